# A stand-in for Anthropic's Messages API, for tests: HTTPS with a certificate
# from a test CA that only the bottle's proxy trusts. It answers every
# POST /v1/messages with one short reply (streamed as server-sent events when
# asked), and prints one JSON line per request: method, path, and the
# x-api-key it received, so a test can tell which key reached the upstream.
# Usage: python3 fakeAnthropic.py CERT KEY REPLY
import http.server
import json
import ssl
import sys

CERT, KEY, REPLY = sys.argv[1], sys.argv[2], sys.argv[3]


def log(**fields):
    print(json.dumps(fields), flush=True)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status, body, content_type="application/json"):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        log(method="GET", path=self.path, key=self.headers.get("x-api-key"))
        self._send(200, "{}")

    def do_HEAD(self):
        log(method="HEAD", path=self.path, key=self.headers.get("x-api-key"))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        try:
            req = json.loads(raw or b"{}")
        except ValueError:
            req = {}
        log(method="POST", path=self.path, key=self.headers.get("x-api-key"), stream=bool(req.get("stream")))
        if not self.path.startswith("/v1/messages"):
            return self._send(200, "{}")
        if self.path.startswith("/v1/messages/count_tokens"):
            return self._send(200, json.dumps({"input_tokens": 10}))
        model = req.get("model", "claude-test")
        message = {
            "id": "msg_fake", "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": REPLY}], "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 5},
        }
        if not req.get("stream"):
            return self._send(200, json.dumps(message))
        events = [
            ("message_start", {"type": "message_start", "message": {**message, "content": [], "stop_reason": None, "usage": {"input_tokens": 10, "output_tokens": 1}}}),
            ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": REPLY}}),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": {"output_tokens": 5}}),
            ("message_stop", {"type": "message_stop"}),
        ]
        body = "".join("event: %s\ndata: %s\n\n" % (name, json.dumps(data)) for name, data in events)
        self._send(200, body, "text/event-stream")


server = http.server.ThreadingHTTPServer(("0.0.0.0", 443), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(CERT, KEY)
server.socket = context.wrap_socket(server.socket, server_side=True)
log(event="listening")
server.serve_forever()
