/**
 * The mitmproxy addon bottle writes into each bottle's state dir
 * (`egress/bottle_egress.py`) and loads with `mitmdump -s`. It enforces
 * the one meaning of `egress.allow` (src/resources/egressRules.ts) on every
 * CONNECT and plain-HTTP request, refuses with 403 naming the bottle and
 * the host, passes allowed TLS through untouched unless a secret is
 * injected for that host, and prints one JSON line per decision. Written
 * for mitmproxy 8.1 (Debian's) and the current release alike: it uses
 * only hooks and fields both have.
 */
export const EGRESS_ADDON_FILE = "bottle_egress.py"
export const EGRESS_POLICY_FILE = "policy.json"

/** The policy file the addon reads: rendered by bottle from the spec. */
export interface EgressPolicy {
  readonly bottle: string
  readonly rules: ReadonlyArray<{ readonly entry: string; readonly domain: string; readonly wildcard: boolean; readonly ports: ReadonlyArray<number> }>
  /** Hosts whose TLS the proxy opens to put a secret in a header; the value is read from `file` under the config dir. */
  readonly inject: ReadonlyArray<{ readonly host: string; readonly header: string; readonly format: string; readonly file: string; readonly placeholder: string }>
}

export const EGRESS_ADDON = String.raw`# Written by bottle: the egress policy of one bottle. Rewritten on every apply; do not edit.
import datetime
import json
import os

from mitmproxy import http

POLICY_PATH = os.environ.get("BOTTLE_EGRESS_POLICY", "/config/policy.json")
CONFIG_DIR = os.path.dirname(POLICY_PATH)


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _norm(host):
    return (host or "").lower().rstrip(".")


class BottleEgress:
    def __init__(self):
        with open(POLICY_PATH) as f:
            policy = json.load(f)
        self.bottle = policy["bottle"]
        self.rules = policy["rules"]
        # Host -> [(header, value)]: the secret values are read here, from files only the proxy sees.
        self.inject = {}
        for i in policy.get("inject", []):
            with open(os.path.join(CONFIG_DIR, i["file"])) as f:
                value = f.read()
            self.inject.setdefault(_norm(i["host"]), []).append((i["header"], i["format"].replace("{value}", value)))

    def _rule(self, host, port):
        h = _norm(host)
        for r in self.rules:
            if port not in r["ports"]:
                continue
            d = r["domain"]
            if (r["wildcard"] and h.endswith("." + d)) or (not r["wildcard"] and h == d):
                return r
        return None

    def _log(self, method, host, port, verdict, rule, reason):
        print(json.dumps({
            "time": _now(), "bottle": self.bottle, "method": method, "host": _norm(host), "port": port,
            "verdict": verdict, "rule": rule["entry"] if rule else None, "reason": reason,
        }), flush=True)

    def _refuse(self, flow, method, host, port, reason):
        self._log(method, host, port, "refused", None, reason)
        body = "bottle '%s': %s to %s:%d is not allowed (%s). Allow it in the bottle's spec.egress.allow and run bottle apply.\n" % (
            self.bottle, "CONNECT" if method == "CONNECT" else "a request", _norm(host), port, reason)
        flow.response = http.Response.make(403, body.encode(), {"Content-Type": "text/plain; charset=utf-8"})

    def running(self):
        print(json.dumps({"time": _now(), "bottle": self.bottle, "event": "ready"}), flush=True)

    def http_connect(self, flow):
        host, port = flow.request.host, flow.request.port
        rule = self._rule(host, port)
        if rule is None:
            self._refuse(flow, "CONNECT", host, port, "not in the allow list")
        else:
            self._log("CONNECT", host, port, "allowed", rule, "allow list")

    def tls_clienthello(self, data):
        server = data.context.server.address
        host = _norm(server[0]) if server else ""
        sni = _norm(data.client_hello.sni)
        if sni and sni != host:
            # Domain fronting: the tunnel was allowed for one name, the TLS names another.
            # Passed through to a port nothing listens on (no name to resolve), the connection closes.
            self._log("TLS", sni, server[1] if server else 0, "refused", None, "TLS server name differs from the CONNECT host " + host)
            data.context.server.address = ("127.0.0.1", 1)
            data.ignore_connection = True
            return
        if host not in self.inject:
            data.ignore_connection = True

    def request(self, flow):
        # Plain HTTP through the proxy, and requests inside a tunnel bottle intercepts (injected hosts).
        host, port = flow.request.host, flow.request.port
        names = {_norm(host), _norm(flow.request.host_header or host).split(":")[0]}
        for name in names:
            rule = self._rule(name, port)
            if rule is None:
                self._refuse(flow, flow.request.method, name, port, "not in the allow list")
                return
        if flow.request.scheme == "https":
            # Only a tunnel bottle opened (an injected host) gets here: whatever the agent put in the header, the real value goes.
            for header, value in self.inject.get(_norm(host), []):
                flow.request.headers[header] = value
            self._log(flow.request.method, host, port, "allowed", self._rule(host, port), "credential injected" if _norm(host) in self.inject else "allow list")
        else:
            self._log(flow.request.method, host, port, "allowed", self._rule(host, port), "allow list")


addons = [BottleEgress()]
`

/**
 * Whether a log line is one of the addon's events (`{"event": "ready", …}`): a JSON object whose `event` is
 * that, nothing less; and, given `afterMs`, one whose own `time` (the addon's, to the millisecond) is later:
 * a line an earlier run of the proxy wrote is not this run's, though the Engine may stamp it later.
 */
export const isEventLine = (line: string, event: string, afterMs = 0): boolean => {
  if (!line.includes(event)) return false
  try {
    const v = JSON.parse(line) as unknown
    if (typeof v !== "object" || v === null || Array.isArray(v)) return false
    const e = v as { event?: unknown; time?: unknown }
    return e.event === event && (afterMs <= 0 || (typeof e.time === "string" && Date.parse(e.time) > afterMs))
  } catch {
    return false
  }
}
