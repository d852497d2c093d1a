#!/usr/bin/env python3
"""Helper for scripts/test-observability (stdlib only).

Subcommands:
  gate-reader FIFO RELEASE OUT   read nothing from FIFO until the file RELEASE
                                 exists, then copy FIFO to OUT until EOF: a
                                 sink that stalls, then recovers.
  check ...                      drive load at trackd and check what a real
                                 Prometheus scraped from it (see main()).
  count-rows SQL                 print how many rows the INSERTs in SQL hold.
"""

import argparse
import gzip
import http.client
import json
import math
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

GOOD = {"event": "click", "user": "u1", "location": "/pricing", "plan": "pro"}


def log(message):
    print(f"    {message}", flush=True)


class Failure(Exception):
    pass


# ---------------------------------------------------------------- slow sink


def gate_reader(fifo, release, out):
    with open(fifo, "rb") as source:
        while not os.path.exists(release):
            time.sleep(0.05)
        with open(out, "wb") as sink:
            while True:
                chunk = source.read(1 << 16)
                if not chunk:
                    return
                sink.write(chunk)


def count_rows(path):
    text = open(path, encoding="utf-8").read()
    # Every row starts with its quoted UUIDv7 id.
    print(len(re.findall(r"\('[0-9a-f]{8}-[0-9a-f]{4}-7", text)))


# ---------------------------------------------------------------- trackd


class Trackd:
    """A keep-alive HTTP client for trackd that tallies statuses."""

    # trackd closes keep-alive connections idle for --request-timeout-ms
    # (10 s by default); a connection idle for half of that is replaced
    # before use rather than risk a request racing the server's close.
    IDLE_REUSE_S = 5.0

    def __init__(self, address):
        host, port = address.rsplit(":", 1)
        self.host, self.port = host, int(port)
        self.conn = None
        self.last_used = 0.0
        self.statuses = {}

    def request(self, method, path, body=b"", headers=None):
        # No retries: a resent request would be counted twice by trackd.
        if self.conn is not None and time.monotonic() - self.last_used > self.IDLE_REUSE_S:
            self.conn.close()
            self.conn = None
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            self.conn.request(method, path, body=body, headers=headers or {})
            response = self.conn.getresponse()
            data = response.read()
            self.last_used = time.monotonic()
        except (http.client.HTTPException, ConnectionError):
            self.conn.close()
            self.conn = None
            raise
        self.statuses[response.status] = self.statuses.get(response.status, 0) + 1
        return response.status, data

    def post_json(self, path, value, headers=None):
        body = json.dumps(value).encode()
        return self.request("POST", path, body, {"Content-Type": "application/json", **(headers or {})})


def bad_requests(client):
    """One of each kind of refusal; returns how many events each reason should count."""
    sent = {}
    def expect(status, got, reason, events=1):
        if got[0] != status:
            raise Failure(f"{reason}: expected HTTP {status}, got {got[0]}: {got[1][:200]!r}")
        if reason:
            sent[reason] = sent.get(reason, 0) + events

    expect(400, client.request("POST", "/track", b"{not json"), "invalid_json")
    expect(400, client.post_json("/batch", [{"event": "a"}, {"user": "b"}, {"location": "c"}]),
           "missing_field", 3)
    expect(400, client.post_json("/track", {"event": 7, "user": "u", "location": "l"}), "invalid_field")
    expect(400, client.post_json("/track", {"event": "a\u0000b", "user": "u", "location": "l"}),
           "unstorable_value")
    # A small gzip body that inflates past --max-decompressed-bytes (4 MiB by
    # default): refused after reading, so the connection stays usable.
    bomb = gzip.compress(b" " * (5 << 20))
    expect(413, client.request("POST", "/track", bomb, {"Content-Encoding": "gzip"}), "body_too_large")
    expect(415, client.request("POST", "/track", b"{}", {"Content-Encoding": "br"}), "unsupported_encoding")
    expect(400, client.post_json("/batch", []), "empty_batch")
    expect(404, client.request("GET", "/wp-login.php"), None)
    expect(405, client.request("GET", "/track"), None)
    return sent


# ---------------------------------------------------------------- Prometheus


class Prometheus:
    def __init__(self, url):
        self.url = url.rstrip("/")

    def api(self, path, **params):
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params, doseq=True)
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.load(response)
        except urllib.error.HTTPError as error:
            body = json.load(error)
        if body.get("status") != "success":
            raise Failure(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr):
        return self.api("query", query=expr)

    def scalar(self, expr):
        """The value of a one-series instant query, or None when it is empty."""
        result = self.query(expr)["result"]
        return float(result[0]["value"][1]) if result else None

    def wait_for(self, what, expr, accept, timeout):
        deadline = time.time() + timeout
        while True:
            value = self.scalar(expr)
            if value is not None and accept(value):
                return value
            if time.time() > deadline:
                raise Failure(f"timed out after {timeout}s waiting for {what} ({expr} = {value})")
            time.sleep(0.25)


def metric_names(expr):
    """Metric names an expression reads: trackd_* and process_* identifiers."""
    names = set()
    for name in re.findall(r"\b((?:trackd|process)_[a-z_]+)\b", expr):
        names.add(re.sub(r"_(bucket|sum|count)$", "", name))
    return names


def exported_names(metrics_text):
    return set(re.findall(r"^# TYPE (\S+) ", metrics_text, re.M))


def resolve_variables(prom, dashboard):
    """Values for the dashboard's variables, as Grafana would pick them:
    the All value where a variable has one, else every value it finds."""
    values = {"__rate_interval": "1m", "__interval": "15s"}
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") != "query":
            continue
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        query = substitute(query, values)
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query.strip())
        if not match:
            raise Failure(f"variable ${var['name']}: unsupported query {query}")
        selector, label = match.groups()
        found = prom.api(f"label/{label}/values", **{"match[]": selector})
        if not found:
            raise Failure(f"variable ${var['name']}: {query} finds no values")
        log(f"${var['name']} = {found} (from {query})")
        if var.get("includeAll") and var.get("allValue"):
            values[var["name"]] = var["allValue"]
        else:
            values[var["name"]] = "|".join(re.escape(v) for v in found)
    return values


def substitute(expr, values):
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace("${" + name + "}", values[name]).replace("$" + name, values[name])
    return expr


def dashboard_targets(dashboard):
    def walk(panels):
        for panel in panels:
            yield from walk(panel.get("panels", []))
            for target in panel.get("targets", []):
                if target.get("expr"):
                    yield panel["title"], target["refId"], target["expr"]
    return list(walk(dashboard["panels"]))


def check_expression(prom, exported, title, expr):
    """Fails unless `expr` is valid PromQL, reads only metrics trackd exports,
    and returns at least one series."""
    unknown = metric_names(expr) - exported
    if unknown:
        raise Failure(f"panel {title!r} reads metrics trackd does not export: {sorted(unknown)}")
    data = prom.query(expr)
    result = data["result"]
    if not result:
        raise Failure(f"panel {title!r} returns no data: {expr}")
    values = [float(r["value"][1]) for r in result]
    shown = ", ".join(f"{v:.4g}" for v in values[:4]) + (" …" if len(values) > 4 else "")
    return len(result), shown, sum(math.isnan(v) for v in values)


def main_check(args):
    prom = Prometheus(args.prometheus)
    client = Trackd(args.trackd)

    print("==> waiting for Prometheus to scrape trackd", flush=True)
    prom.wait_for("the trackd target to be up", 'up{job="trackd"}', lambda v: v == 1, 30)
    burst_started = time.time()

    print("==> burst while the sink is stalled", flush=True)
    batch = [GOOD] * 100
    for i in range(80):
        status, _ = client.post_json("/batch", batch)
        if status == 503:
            break
    accepted_503 = client.statuses.get(503, 0)
    log(f"{i + 1} batches of 100 sent: statuses {client.statuses}")
    if not accepted_503:
        raise Failure("the stalled sink never filled the queue (no 503)")
    depth = prom.wait_for("queue depth > 0 in Prometheus", "trackd_queue_depth", lambda v: v > 0, 15)
    log(f"Prometheus sees trackd_queue_depth = {depth:g}")
    time.sleep(2)

    print("==> one of each refusal", flush=True)
    expected = bad_requests(client)
    log(f"sent {expected}")

    print("==> releasing the sink", flush=True)
    open(args.release, "w").close()
    prom.wait_for("queue depth back to 0", "trackd_queue_depth", lambda v: v == 0, 30)

    print("==> steady load", flush=True)
    steady_until = time.time() + 4
    sent = 0
    while time.time() < steady_until and sent < 2000:
        client.post_json("/track", GOOD, {"User-Agent": "observability-check"})
        client.post_json("/batch", [GOOD] * 10)
        sent += 11
    log(f"{sent} events sent; statuses so far {client.statuses}")
    time.sleep(3)  # a few more scrapes, and the last linger

    print("==> queue depth over the run, as the dashboard's panel would draw it", flush=True)
    series = prom.api("query_range", query="sum(trackd_queue_depth)",
                      start=burst_started - 2, end=time.time(), step="1")["result"]
    if not series:
        raise Failure("no trackd_queue_depth samples in range")
    depths = [float(v) for _, v in series[0]["values"]]
    log("depth per second: " + " ".join(f"{d:g}" for d in depths))
    if not (max(depths) > 0 and depths[-1] == 0):
        raise Failure(f"queue depth did not rise and fall: max {max(depths)}, last {depths[-1]}")
    log(f"rose to {max(depths):g}, fell to {depths[-1]:g}")

    metrics_text = urllib.request.urlopen(f"http://{args.trackd}/metrics", timeout=10).read().decode()
    open(args.metrics_out, "w").write(metrics_text)
    exported = exported_names(metrics_text)

    print("==> rejections counted per event, by reason", flush=True)
    for reason, count in expected.items():
        got = prom.scalar(f'trackd_events_rejected_total{{reason="{reason}"}}')
        if got != count:
            raise Failure(f"reason {reason}: Prometheus has {got}, expected {count}")
        log(f"{reason}: {got:g}")
    queue_full = prom.scalar('trackd_events_rejected_total{reason="queue_full"}')
    if not queue_full:
        raise Failure("the burst's 503s are not counted as queue_full")
    log(f"queue_full: {queue_full:g}")

    print("==> every expression in dashboards/trackd.json", flush=True)
    dashboard = json.load(open(args.dashboard))
    values = resolve_variables(prom, dashboard)
    targets = dashboard_targets(dashboard)
    for title, ref, expr in targets:
        series_count, shown, nans = check_expression(prom, exported, title, substitute(expr, values))
        note = f" ({nans} NaN)" if nans else ""
        log(f"ok  {title} [{ref}]: {series_count} series: {shown}{note}")
    # The check itself must catch a panel reading a metric trackd lacks.
    for bogus in ["sum(rate(trackd_not_a_metric_total[1m]))", "nonexistent_metric"]:
        try:
            check_expression(prom, exported, "self-test", bogus)
        except Failure:
            continue
        raise Failure(f"the dashboard check accepted {bogus}")

    print("==> every alert rule, as loaded by this Prometheus", flush=True)
    rules = [r for g in prom.api("rules")["groups"] for r in g["rules"] if r["type"] == "alerting"]
    declared = len(re.findall(r"^\s*- alert:", open(args.alerts).read(), re.M))
    if len(rules) != declared:
        raise Failure(f"Prometheus loaded {len(rules)} alerting rules, {args.alerts} declares {declared}")
    for rule in rules:
        if rule.get("health") != "ok" or rule.get("lastError"):
            raise Failure(f"alert {rule['name']}: health {rule.get('health')}: {rule.get('lastError')}")
        firing = prom.query(rule["query"])["result"]
        log(f"ok  {rule['name']}: evaluates ({len(firing)} series now); state {rule['state']}")
    firing = sorted({a["labels"]["alertname"] for a in prom.api("alerts")["alerts"] if a["state"] == "firing"})
    log(f"firing now: {firing}")
    if firing != ["TrackdQueueFullRejections"]:
        raise Failure("after a queue_full burst exactly TrackdQueueFullRejections should fire")

    accepted = prom.scalar("trackd_events_accepted_total")
    written = prom.scalar("trackd_events_written_total")
    log(f"accepted {accepted:g}, written {written:g}")
    if accepted != written:
        raise Failure("after the queue drained, written should equal accepted")
    open(args.accepted_out, "w").write(f"{int(accepted)}\n")
    print(f"==> {len(targets)} dashboard expressions and {len(rules)} alert expressions verified", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    gate = sub.add_parser("gate-reader")
    gate.add_argument("fifo")
    gate.add_argument("release")
    gate.add_argument("out")
    rows = sub.add_parser("count-rows")
    rows.add_argument("sql")
    check = sub.add_parser("check")
    check.add_argument("--prometheus", required=True, help="base URL")
    check.add_argument("--trackd", required=True, help="host:port")
    check.add_argument("--release", required=True, help="file that releases the stalled sink")
    check.add_argument("--dashboard", required=True)
    check.add_argument("--alerts", required=True)
    check.add_argument("--metrics-out", required=True, help="where to save a scrape of /metrics")
    check.add_argument("--accepted-out", required=True, help="where to save the accepted count")
    args = parser.parse_args()
    try:
        if args.command == "gate-reader":
            gate_reader(args.fifo, args.release, args.out)
        elif args.command == "count-rows":
            count_rows(args.sql)
        else:
            main_check(args)
    except Failure as failure:
        print(f"FAIL: {failure}", file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
