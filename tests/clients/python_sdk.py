"""Sends every Segment call through segment-analytics-python to trackd.

Run by tests/segment_clients.rs with TRACKD_URL and TRACKD_WRITE_KEY set.
Prints, as JSON, each message the library built, so the test can find its row.
One client sends plain JSON, a second gzip-compressed bodies.
"""
import json
import os
import sys
from datetime import datetime, timedelta, timezone

from segment.analytics import Client
from segment.analytics.version import VERSION

url = os.environ["TRACKD_URL"]
write_key = os.environ["TRACKD_WRITE_KEY"]
errors = []


def on_error(error, items):
    errors.append("%s (%d messages)" % (error, len(items)))


sent = []
for tag, gzip in (("plain", False), ("gzip", True)):
    client = Client(write_key=write_key, host=url, gzip=gzip, on_error=on_error, max_retries=2)
    user = "py-%s-user" % tag
    an_hour_ago = datetime.now(timezone.utc) - timedelta(hours=1)
    calls = [
        client.identify(user, {"email": "%s@example.test" % tag, "plan": "pro"}),
        client.track(user, "Order Completed", {"total": 9.5, "currency": "EUR"}, timestamp=an_hour_ago),
        client.page(user, "Docs", "Install", {"url": "http://docs.example.test/%s" % tag, "path": "/%s" % tag}),
        client.group(user, "py-group", {"name": "Acme"}),
        client.alias("py-%s-anon" % tag, user),
    ]
    client.flush()
    client.shutdown()
    for ok, message in calls:
        if not ok:
            errors.append("not queued: %r" % (message,))
        sent.append(message)

if errors:
    print("\n".join(errors), file=sys.stderr)
    sys.exit(1)
json.dump({"version": VERSION, "messages": sent}, sys.stdout, default=str)
