import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
READ = re.compile(r"""env_(?:str|bool|int|list|url)\(\s*["']([A-Z0-9_]+)["']""")
ENVIRON = re.compile(
    r"""environ(?:\.get\(|\[)\s*["']((?:DJANGO|OPSCONSOLE)_[A-Z0-9_]+)["']"""
)


def _names_read_by_code() -> set[str]:
    names: set[str] = set()
    for path in [*REPO.glob("opsconsole/**/*.py"), *REPO.glob("apps/**/*.py")]:
        text = path.read_text()
        names.update(READ.findall(text))
        names.update(ENVIRON.findall(text))
    return names - {"DJANGO_SETTINGS_MODULE"}


def test_env_example__every_variable_the_code_reads__is_listed():
    listed = set(
        re.findall(r"^([A-Z0-9_]+)=", (REPO / ".env.example").read_text(), re.M)
    )
    names = _names_read_by_code()
    assert "DATABASE_URL" in names  # the scan itself works
    assert names - listed == set()
