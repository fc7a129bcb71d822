/**
 * The probe bottle runs inside a bottle's network namespace (a short-lived
 * container with `NetworkMode: container:<target>`), in an image bottle
 * already has (the mitmproxy image: python3). It relies on nothing in the
 * agent's image. It never sends a packet to a public address: a route is
 * looked up by connecting a UDP socket, which sends nothing.
 *
 * Input: one JSON argument. Output: one JSON line on stdout.
 * - `{"mode": "ready", "port": P, "deadline": S}`: run inside the proxy itself
 *   (an exec in its own image), waits until it accepts on P and answers HTTP;
 *   prints `{"ready": true|false, "ms": …}` and exits 0 only when ready.
 * - `{"mode": "verify", …}`: checks every property at once and prints
 *   `{"properties": [{"name", "ok", "detail"}, …]}`.
 * - `{"mode": "gate", "deadline": S, …}`: as verify, again and again until
 *   every property holds (exit 0) or S seconds have passed (exit 1). A
 *   Kubernetes agent's pod runs it first, as an init container: its agent
 *   starts only inside a fence that holds (a pod may start before the
 *   network plugin enforces a new NetworkPolicy).
 */

/** A host no allow list may name (`.invalid` never resolves): the proxy must refuse it. */
export const REFUSED_HOST = "verify.bottle.invalid"

/** Public addresses a fence must keep the agent from (a route to them looked up, or on a cluster a connection tried). */
export const PUBLIC_ADDRESSES = ["1.1.1.1", "8.8.8.8", "2606:4700:4700::1111"]

/** The image a probe runs in: the bottle's proxy image when that is mitmproxy's (python3 is there), else `fallback`. */
export const probeImageFor = (proxyImage: string | undefined, fallback: string): string =>
  proxyImage !== undefined && /mitmproxy/i.test(proxyImage) ? proxyImage : fallback

/** The input of a verify probe. */
export interface ProbeInput {
  readonly mode: "verify" | "gate"
  /** gate: how long to wait for the fence to hold. */
  readonly deadline?: number
  /** The proxy the agent should use; null when the bottle has none. */
  readonly proxy: { readonly host: string; readonly port: number } | null
  /** A host no allow list names: the proxy must refuse it. */
  readonly refusedHost: string
  /** Addresses (or names) of the host and gateways that must be unreachable, with the ports to try. */
  readonly hostTargets: ReadonlyArray<{ readonly host: string; readonly port: number }>
  /** Public addresses a route to which must not exist (looked up, never contacted). */
  readonly publicAddresses: ReadonlyArray<string>
  /** Names that must not resolve. */
  readonly dnsNames: ReadonlyArray<string>
  /** The bottle's other sidecars (git gate, supervisor): each must accept a connection. */
  readonly sidecars: ReadonlyArray<{ readonly name: string; readonly host: string; readonly port: number }>
  /** Seconds each connection attempt may take. */
  readonly timeout: number
  /**
   * On a cluster: every pod has a route out (the fence is NetworkPolicy), so instead of routes and IPv6 the
   * probe checks that no public address answers a connection (a SYN the policy must drop), and adds the
   * cluster's API (KUBERNETES_SERVICE_HOST, in every pod's environment) to what must not answer.
   */
  readonly cluster?: boolean
  /** On a cluster: the proxy's host is read from this variable (the address Kubernetes gives its Service). */
  readonly proxyHostEnv?: string
}

export interface ProbeProperty {
  readonly name: string
  readonly ok: boolean
  readonly detail: string
}

export const PROBE_SCRIPT = String.raw`
import errno, json, os, random, selectors, socket, struct, sys, threading, time

args = json.loads(sys.argv[1])

def ready(a):
    start = time.time()
    while time.time() - start < a["deadline"]:
        try:
            s = socket.create_connection(("127.0.0.1", a["port"]), timeout=1)
            s.settimeout(2)
            s.sendall(b"GET http://ready.bottle.invalid/ HTTP/1.1\r\nHost: ready.bottle.invalid\r\nConnection: close\r\n\r\n")
            if s.recv(16).startswith(b"HTTP/"):
                return {"ready": True, "ms": int((time.time() - start) * 1000)}
        except OSError:
            pass
        time.sleep(0.05)
    return {"ready": False, "ms": int((time.time() - start) * 1000)}

def status_of(host, port, request, timeout):
    s = socket.create_connection((host, port), timeout=timeout)
    s.settimeout(timeout)
    s.sendall(request)
    data = b""
    while b"\r\n" not in data and len(data) < 4096:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    line = data.split(b"\r\n")[0].decode("latin-1")
    return line

def default_gateways():
    hops = []
    try:
        with open("/proc/net/route") as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if len(fields) > 2 and fields[1] == "00000000" and fields[2] != "00000000":
                    hops.append(socket.inet_ntoa(struct.pack("<I", int(fields[2], 16))))
    except OSError:
        pass
    return hops

def answers(host, timeout):
    try:
        socket.create_connection((host, 9), timeout=timeout).close()
        return True
    except ConnectionRefusedError:
        return True
    except OSError:
        return False

def nameservers():
    found = []
    try:
        with open("/etc/resolv.conf") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 1 and fields[0] == "nameserver":
                    found.append(fields[1])
    except OSError:
        pass
    return found

def skip_name(data, i):
    while i < len(data):
        n = data[i]
        if n == 0:
            return i + 1
        if n & 0xC0 == 0xC0:
            return i + 2
        i += n + 1
    return i

RCODES = {0: "an answer", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}

def ask(server, name, timeout):
    """What a resolver says about name: (rcode, first IPv4 address or None), or None when it does not answer."""
    qid = random.randint(0, 65535)
    packet = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    packet += b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
    s = socket.socket(socket.AF_INET6 if ":" in server else socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(packet, (server, 53))
        data = s.recv(4096)
    except OSError:
        return None
    finally:
        s.close()
    if len(data) < 12 or struct.unpack(">H", data[:2])[0] != qid:
        return None
    rcode = data[3] & 0x0F
    count = struct.unpack(">H", data[6:8])[0]
    i = skip_name(data, 12) + 4
    for _ in range(count if rcode == 0 else 0):
        i = skip_name(data, i)
        if i + 10 > len(data):
            break
        rtype, _, _, length = struct.unpack(">HHIH", data[i:i + 10])
        i += 10
        if rtype == 1 and length == 4:
            return (rcode, socket.inet_ntoa(data[i:i + 4]))
        i += length
    return (rcode, None)

def query(server, name, timeout):
    """The first IPv4 address a resolver gives for name, or None."""
    r = ask(server, name, timeout)
    return r[1] if r is not None and r[0] == 0 else None

def hosts_file(name):
    try:
        with open("/etc/hosts") as f:
            for line in f:
                fields = line.split("#")[0].split()
                if len(fields) > 1 and name in fields[1:]:
                    return fields[0]
    except OSError:
        pass
    return None

def resolve(name, timeout):
    """An address for name, as the namespace resolves it, never waiting longer than timeout per resolver."""
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in name else socket.AF_INET, name)
        return name
    except OSError:
        pass
    found = hosts_file(name)
    for server in ([] if found else nameservers()):
        try:
            found = query(server, name, timeout)
        except OSError:
            found = None
        if found:
            break
    return found

def verify(a):
    props = []
    lock = threading.Lock()
    def add(name, ok, detail):
        with lock:
            props.append({"name": name, "ok": ok, "detail": detail})
    t = a["timeout"]
    def proxy():
        p = a["proxy"]
        if p is None:
            return
        host = a["refusedHost"]
        try:
            line = status_of(p["host"], p["port"], ("CONNECT %s:443 HTTP/1.1\r\nHost: %s:443\r\n\r\n" % (host, host)).encode(), t + 2)
        except OSError as e:
            add("proxy answers", False, "%s:%d: %s" % (p["host"], p["port"], e))
            add("proxy refuses a host not allowed", False, "no answer")
            return
        add("proxy answers", line.startswith("HTTP/"), "%s:%d: %s" % (p["host"], p["port"], line or "empty answer"))
        parts = line.split(" ")
        add("proxy refuses a host not allowed", len(parts) > 1 and parts[1] == "403", "CONNECT %s:443: %s" % (host, line or "empty answer"))
    def routes():
        found = []
        for addr in a["publicAddresses"]:
            family = socket.AF_INET6 if ":" in addr else socket.AF_INET
            try:
                s = socket.socket(family, socket.SOCK_DGRAM)
                s.connect((addr, 53))
                found.append(addr)
                s.close()
            except OSError:
                pass
        if not found:
            add("no direct route out", True, "no route to " + ", ".join(a["publicAddresses"]))
            return
        # A route may exist on paper (Docker gives an internal network a default route) and lead nowhere:
        # no host holds its gateway's address. Only a gateway that answers is a way out.
        hops = default_gateways()
        live = [g for g in hops if answers(g, t)]
        if live:
            add("no direct route out", False, "route to %s via gateway %s, which answers" % (", ".join(found), ", ".join(live)))
        elif hops:
            add("no direct route out", True, "the default route's gateway %s does not exist (no host holds it)" % ", ".join(hops))
        else:
            add("no direct route out", False, "route to " + ", ".join(found))
    reached = []
    def note(target, err):
        if err == 0:
            reached.append("%s:%d (connected)" % (target["host"], target["port"]))
        elif err == errno.ECONNREFUSED:
            reached.append("%s:%d (refused: the host answered)" % (target["host"], target["port"]))
    def addresses(targets):
        # Every address at once from one thread (a busy host has hundreds; the probe may run 64 threads in all):
        # non-blocking connects, watched together for one timeout.
        sel = selectors.DefaultSelector()
        for target in targets:
            try:
                address = target.get("address", target["host"])
                s = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                err = s.connect_ex((address, target["port"]))
            except OSError:
                continue
            if err == errno.EINPROGRESS:
                sel.register(s, selectors.EVENT_WRITE, target)
            else:
                note(target, err)
                s.close()
        end = time.time() + t
        while sel.get_map() and time.time() < end:
            for key, _ in sel.select(max(0, end - time.time())):
                note(key.data, key.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
                sel.unregister(key.fileobj)
                key.fileobj.close()
    def literal(name):
        try:
            socket.inet_pton(socket.AF_INET6 if ":" in name else socket.AF_INET, name)
            return True
        except OSError:
            return False
    def host(target):
        address = resolve(target["host"], t)
        # A name that leads to the namespace's own loopback (Podman's host.containers.internal, pinned so) is not the host.
        if address is None or address.startswith("127.") or address == "::1":
            return
        addresses([dict(target, address=address)])
    leaks = []
    servers = nameservers()
    def dns(name):
        # Asked of the namespace's own resolvers directly, with a short timeout. A resolver that answers at all for an
        # outside name (an address, or even "no such name") takes questions out: a channel, whatever it resolves.
        for server in servers:
            r = ask(server, name, t)
            if r is None or r[0] == 5:
                continue
            leaks.append("%s -> %s (via %s)" % (name, r[1], server) if r[1] else "%s: %s from %s, so it forwards outside names" % (name, RCODES.get(r[0], "rcode %d" % r[0]), server))
            return
    def ipv6():
        addrs = []
        try:
            with open("/proc/net/if_inet6") as f:
                for line in f:
                    fields = line.split()
                    if fields and fields[-1] != "lo":
                        addrs.append(fields[-1])
        except OSError:
            pass
        add("no IPv6 address", not addrs, "IPv6 on " + ", ".join(sorted(set(addrs))) if addrs else "IPv6 off")
    unreached = []
    def sidecar(x):
        try:
            s = socket.create_connection((x["host"], x["port"]), timeout=t + 2)
            s.close()
        except OSError as e:
            unreached.append("%s (%s:%d): %s" % (x["name"], x["host"], x["port"], e))
    public_reached = []
    def public(addr):
        try:
            socket.create_connection((addr, 443), timeout=t).close()
            public_reached.append("%s:443 (connected)" % addr)
        except ConnectionRefusedError:
            public_reached.append("%s:443 (refused: something answered)" % addr)
        except OSError:
            pass
    cluster = a.get("cluster", False)
    if cluster:
        # The cluster's API, and the pod's own node (traffic to it is always allowed by NetworkPolicy: the kubelet, node-local services).
        extra = []
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            extra.append({"host": os.environ["KUBERNETES_SERVICE_HOST"], "port": int(os.environ.get("KUBERNETES_SERVICE_PORT", "443"))})
        if os.environ.get("BOTTLE_NODE_IP"):
            extra += [{"host": os.environ["BOTTLE_NODE_IP"], "port": p} for p in (22, 10250, 10255)]
        a = dict(a, hostTargets=a["hostTargets"] + extra)
        if a["proxy"] is not None and a.get("proxyHostEnv"):
            a["proxy"] = dict(a["proxy"], host=os.environ.get(a["proxyHostEnv"], "unset-" + a["proxyHostEnv"]))
    proxy_thread = threading.Thread(target=proxy)
    sidecar_threads = [threading.Thread(target=sidecar, args=(x,)) for x in a.get("sidecars", [])]
    threads = [proxy_thread] + sidecar_threads
    if cluster:
        threads += [threading.Thread(target=public, args=(x,)) for x in a["publicAddresses"]]
    else:
        threads += [threading.Thread(target=routes), threading.Thread(target=ipv6)]
    threads.append(threading.Thread(target=addresses, args=([x for x in a["hostTargets"] if literal(x["host"])],)))
    # Names (host.docker.internal) are resolved first: a thread each, and there are few.
    threads += [threading.Thread(target=host, args=(x,)) for x in a["hostTargets"] if not literal(x["host"])]
    threads += [threading.Thread(target=dns, args=(n,)) for n in a["dnsNames"]]
    # Every check runs at once and gets one timeout, plus a little: what has not answered by then did not answer.
    for th in threads:
        th.daemon = True
        th.start()
    deadline = time.time() + t + 0.3
    for th in threads:
        th.join(max(0, deadline - time.time()))
    # The proxy must answer: it gets longer, and silence is a failure, never a property left out.
    proxy_thread.join(max(0, deadline + 3 - time.time()))
    if proxy_thread.is_alive():
        add("proxy answers", False, "%s:%d gave no answer within %ds" % (a["proxy"]["host"], a["proxy"]["port"], t + 3))
        add("proxy refuses a host not allowed", False, "no answer")
    for th in sidecar_threads:
        th.join(max(0, deadline + 2 - time.time()))
    if a.get("sidecars"):
        names = ", ".join("%s (%s:%d)" % (x["name"], x["host"], x["port"]) for x in a["sidecars"])
        add("sidecars answer", not unreached and not any(th.is_alive() for th in sidecar_threads), "; ".join(unreached) if unreached else ("no answer from " + names if any(th.is_alive() for th in sidecar_threads) else names + " answer"))
    add("host and gateways unreachable", not reached, "reached " + ", ".join(sorted(reached)) if reached else "%d addresses tried, none answered" % len(a["hostTargets"]))
    if cluster:
        add("public addresses unreachable", not public_reached, "reached " + ", ".join(sorted(public_reached)) if public_reached else "no answer from " + ", ".join(a["publicAddresses"]))
    add("no outside DNS", not leaks, "; ".join(sorted(leaks)) if leaks else "no resolver answered for " + ", ".join(a["dnsNames"]))
    return {"properties": sorted(props, key=lambda p: p["name"])}

def gate(a):
    end = time.time() + a.get("deadline", 60)
    while True:
        r = verify(a)
        held = all(p["ok"] for p in r["properties"])
        if held or time.time() > end:
            return dict(r, held=held)
        time.sleep(2)

result = ready(args) if args["mode"] == "ready" else gate(args) if args["mode"] == "gate" else verify(args)
print(json.dumps(result), flush=True)
# Checks still waiting (a resolver that never answers) are abandoned, not waited for.
os._exit(1 if result.get("ready") is False or result.get("held") is False else 0)
`
