import sys

from opsconsole.run.runner import main

sys.exit(main())
