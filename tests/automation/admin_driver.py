"""Drive the Django admin with Django's test client, logged in as a staff superuser (a test helper process).

Reads a JSON list of {method, path, data?} on stdin and prints one JSON line of
[{status, body, location}]; run with the server's DATABASE_URL and REDIS_* so the admin's
status events reach the server's sockets.
"""

import json
import sys

import django


def main() -> None:
    django.setup()
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.test.utils import setup_test_environment

    setup_test_environment()  # 'testserver' allowed, as in any Django test
    staff, _ = get_user_model().objects.get_or_create(username="operator", defaults={"is_staff": True, "is_superuser": True})
    client = Client()
    client.force_login(staff)
    answers = []
    for step in json.load(sys.stdin):
        response = getattr(client, step["method"])(step["path"], step.get("data") or {})
        answers.append({"status": response.status_code, "body": response.content.decode(errors="replace"),
                        "location": response.get("Location")})
    print(json.dumps(answers))


if __name__ == "__main__":
    main()
