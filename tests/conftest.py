import os

# Playwright's sync API runs an event loop in the test thread (STACK-NOTES pitfall 12).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
