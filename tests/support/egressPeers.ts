/**
 * The other ends of a bottle's egress path, for tests against the real
 * proxy: a fake upstream on the bottle's egress network, a TLS client that
 * shares the agent's network namespace, and a way to send many requests from
 * inside the agent at once. Both Python programs run in the mitmproxy image
 * (python3 and openssl, no registry needed).
 */
import { spawn } from "node:child_process"

/**
 * The fake upstream: plain HTTP on 80 and 8443 answering with the Host header
 * it was asked for, and TLS on 443 with a fresh self-signed certificate. It
 * logs one JSON line at start (the SHA-256 of its certificate) and one per
 * connection accepted on 443 (the first bytes it received), so a test can
 * tell whether a tunnel reached it and whether the proxy left TLS untouched.
 */
export const UPSTREAM_SCRIPT = String.raw`
import hashlib, http.server, json, socket, socketserver, ssl, subprocess, threading

subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "/tmp/key.pem", "-out", "/tmp/cert.pem",
                "-days", "1", "-subj", "/CN=bottle-test-upstream"], check=True, capture_output=True)

def log(**kw):
    print(json.dumps(kw), flush=True)

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("upstream answered %s\n" % self.headers.get("Host", "")).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

for port in (80, 8443):
    threading.Thread(target=Server(("0.0.0.0", port), Handler).serve_forever, daemon=True).start()

tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
tls.load_cert_chain("/tmp/cert.pem", "/tmp/key.pem")
tls.sni_callback = lambda sock, name, ctx: log(event="tls-hello", sni=name)

def serve_tls(conn, peer):
    conn.settimeout(5)
    try:
        log(event="tls-accept", peer=peer[0], first=conn.recv(16, socket.MSG_PEEK).hex())
        t = tls.wrap_socket(conn, server_side=True)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = t.recv(4096)
            if not chunk:
                break
            data += chunk
        t.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nupstream answered over TLS\n")
        t.close()
    except Exception as e:
        log(event="tls-error", error=str(e))
        conn.close()

srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", 443))
srv.listen(16)
log(event="ready", cert=hashlib.sha256(ssl.PEM_cert_to_DER_cert(open("/tmp/cert.pem").read())).hexdigest())
while True:
    c, p = srv.accept()
    threading.Thread(target=serve_tls, args=(c, p), daemon=True).start()
`

/**
 * A TLS client through an HTTP proxy, for each attempt in turn: CONNECT to
 * `target`, a TLS handshake naming `sni` (no verification: the point is which
 * certificate comes back), then one GET. Prints one JSON line, a list with
 * per attempt the CONNECT status line, the SHA-256 of the certificate it got,
 * the response, or the error.
 */
export const TLS_CLIENT_SCRIPT = String.raw`
import hashlib, json, socket, ssl, sys

def attempt(a):
    out = {}
    try:
        s = socket.create_connection((a["proxy"], a["port"]), timeout=5)
        s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (a["target"], a["target"])).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(1)
            if not chunk:
                break
            head += chunk
        out["connect"] = head.split(b"\r\n")[0].decode("latin-1")
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        t = ctx.wrap_socket(s, server_hostname=a["sni"])
        out["cert"] = hashlib.sha256(t.getpeercert(binary_form=True)).hexdigest()
        t.sendall(("GET / HTTP/1.0\r\nHost: %s\r\n\r\n" % a["sni"]).encode())
        body = b""
        while True:
            chunk = t.recv(4096)
            if not chunk:
                break
            body += chunk
        out["response"] = body.decode("latin-1")
    except Exception as e:
        out["error"] = "%s: %s" % (type(e).__name__, e)
    return out

print(json.dumps([attempt(a) for a in json.loads(sys.argv[1])]), flush=True)
`

const SEPARATOR = "--- end of job ---"

/**
 * Runs a busybox sh `script` once per argument (as `$1`), all at once, in one
 * `docker <how…> sh -c …` (`["exec", container]`, or `["run", "--rm", …, image]`),
 * and resolves to each job's stdout and stderr in argument order. One process
 * for many probes keeps a suite of slow network probes fast; a promise lets
 * probes from two places run side by side.
 */
export const shJobs = (how: ReadonlyArray<string>, script: string, args: ReadonlyArray<string>): Promise<ReadonlyArray<string>> => {
  const runner = [
    `script=$1; shift; d=$(mktemp -d); i=0`,
    `for a in "$@"; do i=$((i+1)); sh -c "$script" job "$a" > "$d/$i" 2>&1 & done; wait`,
    `i=0; for a in "$@"; do i=$((i+1)); cat "$d/$i"; printf '\\n%s\\n' '${SEPARATOR}'; done; rm -rf "$d"`
  ].join("\n")
  return new Promise((resolve, reject) => {
    const child = spawn("docker", [...how, "sh", "-c", runner, "runner", script, ...args], { stdio: ["ignore", "pipe", "pipe"], timeout: 60_000 })
    let out = ""
    let err = ""
    child.stdout.on("data", (d) => (out += d))
    child.stderr.on("data", (d) => (err += d))
    child.on("close", (code) => (code === 0 ? resolve(out.split(`\n${SEPARATOR}\n`).slice(0, args.length)) : reject(new Error(`docker ${how.join(" ")} exited ${code}: ${err}`))))
  })
}

/**
 * Sends each raw request to the proxy at egress:8888 with busybox nc, from
 * inside `container`, and resolves to each whole response ("" when nothing
 * answered). The input stays open for three seconds after the request
 * (mitmproxy drops a request whose client has already half-closed), held by
 * a sleep in the background so that nc ends as soon as the proxy closes.
 */
export const throughProxy = (container: string, requests: ReadonlyArray<string>): Promise<ReadonlyArray<string>> =>
  shJobs(["exec", container], `{ printf '%s' "$1"; sleep 3 & } | nc -w 2 egress 8888`, requests)

/** A plain-HTTP proxy request for an absolute URL, its Host header taken from the URL unless given. */
export const get = (url: string, host = new URL(url).host): string => `GET ${url} HTTP/1.0\r\nHost: ${host}\r\n\r\n`

/** A CONNECT request for `host:port`. */
export const connect = (hostPort: string): string => `CONNECT ${hostPort} HTTP/1.1\r\nHost: ${hostPort}\r\n\r\n`

/** The status code of an HTTP response, or undefined when nothing answered. */
export const statusOf = (response: string): number | undefined => {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(response)
  return m ? Number(m[1]) : undefined
}
