/**
 * The egress path with real software: bottle's mitmproxy addon in Debian's
 * mitmproxy, and a fake upstream on the bottle's egress network answering to
 * every name tried here. From inside the agent, through the proxy, a listed
 * host is served and anything else gets 403 naming the bottle and the host;
 * wildcards, case, trailing dots and ports mean what egress.allow says;
 * allowed TLS passes through untouched and a ClientHello naming another
 * server is cut; without the proxy, neither the upstream's address nor its
 * name gets the agent anywhere. Every refusal sits beside the same probe
 * succeeding, so a broken probe cannot pass as a refusal.
 */
import { execFileSync } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { AGENT_IMAGE, bodyOf, bottle, docker, dockerOk, EGRESS_IMAGE, engineAvailable, ensureTestImages, scrub, uniquePrefix } from "../support/docker.js"
import { connect, get, shJobs, statusOf, throughProxy, TLS_CLIENT_SCRIPT, UPSTREAM_SCRIPT } from "../support/egressPeers.js"

const available = engineAvailable()

/** Every name the upstream answers to on the egress network: listed or not, it is the proxy that decides. */
const UPSTREAM_NAMES = ["allowed.test", "evilallowed.test", "allowed.test.evil.test", "a.wild.test", "x.y.wild.test", "wild.test", "port.test", "case.test", "mitm.it"]

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe.skipIf(!available)("egress through the real mitmproxy", () => {
  const prefix = uniquePrefix("egr")
  const home = mkdtempSync(join(tmpdir(), "bottle-home-"))
  const specs = mkdtempSync(join(tmpdir(), "bottle-specs-"))
  const env = { BOTTLE_PREFIX: prefix, BOTTLE_HOME: home, BOTTLE_EGRESS_IMAGE: EGRESS_IMAGE, BOTTLE_SMOLVM: "/nonexistent/smolvm" }
  const agent = `${prefix}-fenced-agent-1`
  const proxy = `${prefix}-fenced-egress-1`
  const egressNet = `${prefix}-fenced_egress`
  const upstream = `${prefix}-upstream`
  let upstreamCert = ""

  const logLines = (container: string) => docker("logs", container).split("\n").filter((l) => l.trim() !== "")
  const proxyLog = () => logLines(proxy).map((l) => JSON.parse(l) as Record<string, unknown>)
  const upstreamLog = () => logLines(upstream).map((l) => JSON.parse(l) as { event: string; cert?: string; sni?: string; first?: string })

  /** The TLS client in the agent's network namespace (the same fence, the same proxy), one attempt after another. */
  const tlsThroughProxy = (...attempts: ReadonlyArray<{ target: string; sni: string }>) =>
    JSON.parse(
      execFileSync("docker", ["run", "--rm", "--network", `container:${agent}`, "--entrypoint", "python3", EGRESS_IMAGE, "-c", TLS_CLIENT_SCRIPT, JSON.stringify(attempts.map((a) => ({ proxy: "egress", port: 8888, ...a })))], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "pipe"],
        timeout: 30_000
      })
    ) as Array<{ connect?: string; cert?: string; response?: string; error?: string }>

  /** Status and body of each request sent through the proxy from inside the agent. */
  const ask = async (...requests: ReadonlyArray<string>) => (await throughProxy(agent, requests)).map((r) => ({ status: statusOf(r), body: bodyOf(r) }))

  /** A 403 whose body tells the user which bottle refused which host and port. */
  const expectRefused = (answer: { status: number | undefined; body: string } | undefined, what: "a request" | "CONNECT", hostPort: string) => {
    expect(answer?.status).toBe(403)
    expect(answer?.body).toContain(`bottle 'fenced': ${what} to ${hostPort} is not allowed`)
  }

  beforeAll(async () => {
    ensureTestImages()
    const file = join(specs, "fenced.yaml")
    writeFileSync(
      file,
      `apiVersion: bottle/v1\nkind: Bottle\nmetadata: { name: fenced }\nspec:\n  image: ${AGENT_IMAGE}\n  egress: { allow: [allowed.test, "*.wild.test", "port.test:8443", "Case.Test", mitm.it] }\n`
    )
    const r = bottle(env, "apply", "-f", file, "--yes")
    if (r.status !== 0) throw new Error(`apply exited ${r.status}:\n${r.stdout}${r.stderr}`)
    docker("run", "-d", "--name", upstream, "--network", egressNet, ...UPSTREAM_NAMES.flatMap((n) => ["--network-alias", n]), "--entrypoint", "python3", EGRESS_IMAGE, "-c", UPSTREAM_SCRIPT)
    for (let i = 0; i < 100 && upstreamCert === ""; i++) {
      const ready = upstreamLog().find((l) => l.event === "ready")
      if (ready?.cert !== undefined) upstreamCert = ready.cert
      else await sleep(100)
    }
    if (upstreamCert === "") throw new Error(`the fake upstream did not start:\n${docker("logs", upstream)}`)
  })
  afterAll(() => {
    // One call removes the three containers at once; scrub then finds only the networks.
    dockerOk("rm", "-f", upstream, agent, proxy)
    scrub(prefix)
    rmSync(home, { recursive: true, force: true })
    rmSync(specs, { recursive: true, force: true })
  })

  it("serves a listed host from the upstream, and refuses with 403 names that merely contain it", async () => {
    const [allowed, evil, suffixed, fronted] = await ask(
      get("http://allowed.test/"),
      get("http://evilallowed.test/"),
      get("http://allowed.test.evil.test/"),
      get("http://allowed.test/", "evilallowed.test")
    )
    expect(allowed).toEqual({ status: 200, body: "upstream answered allowed.test" })
    expectRefused(evil, "a request", "evilallowed.test:80")
    expectRefused(suffixed, "a request", "allowed.test.evil.test:80")
    // A listed host in the URL does not carry an unlisted one in the Host header.
    expectRefused(fronted, "a request", "evilallowed.test:80")
  })

  it("serves nothing of its own: mitm.it, listed, is its upstream's, not mitmproxy's onboarding page", async () => {
    // bottle's launcher leaves mitmproxy's onboarding app out (stock mitmdump answers http://mitm.it/ itself, with its
    // CA and install pages); and it started the lean way, without falling back to mitmdump as it is.
    const [page] = await ask(get("http://mitm.it/"))
    expect(page).toEqual({ status: 200, body: "upstream answered mitm.it" })
    expect(proxyLog().filter((l) => l["event"] === "launcher")).toEqual([])
  })

  it("lets *.wild.test reach subdomains at any depth but not wild.test itself", async () => {
    const [one, two, bare] = await ask(get("http://a.wild.test/"), get("http://x.y.wild.test/"), get("http://wild.test/"))
    expect(one).toEqual({ status: 200, body: "upstream answered a.wild.test" })
    expect(two).toEqual({ status: 200, body: "upstream answered x.y.wild.test" })
    expectRefused(bare, "a request", "wild.test:80")
  })

  it("matches host names whatever their case and with a trailing dot", async () => {
    const [shouted, written, unlisted] = await ask(get("http://ALLOWED.test./", "ALLOWED.test."), get("http://case.test/"), get("http://CASE.TEST.evil.test/", "CASE.TEST.evil.test"))
    expect(shouted).toEqual({ status: 200, body: "upstream answered ALLOWED.test." })
    // The entry is written Case.Test in the spec.
    expect(written).toEqual({ status: 200, body: "upstream answered case.test" })
    expectRefused(unlisted, "a request", "case.test.evil.test:80")
  })

  it("limits an entry with a port to that port, and one without to 80 and 443", async () => {
    const [listedPort, defaultPort, otherPort, plain] = await ask(get("http://port.test:8443/"), get("http://port.test/"), get("http://allowed.test:8443/"), get("http://allowed.test:80/"))
    expect(listedPort).toEqual({ status: 200, body: "upstream answered port.test:8443" })
    expect(plain).toEqual({ status: 200, body: "upstream answered allowed.test" })
    expectRefused(defaultPort, "a request", "port.test:80")
    expectRefused(otherPort, "a request", "allowed.test:8443")
  })

  it("opens a CONNECT tunnel only to a listed host and port", async () => {
    const [allowed, wild, ported, evil, bare, unported] = await throughProxy(agent, [
      connect("allowed.test:443"),
      connect("a.wild.test:443"),
      connect("port.test:8443"),
      connect("evilallowed.test:443"),
      connect("wild.test:443"),
      connect("allowed.test:8443")
    ])
    expect(allowed).toMatch(/^HTTP\/1\.1 200 Connection established/)
    expect(wild).toMatch(/^HTTP\/1\.1 200 Connection established/)
    expect(ported).toMatch(/^HTTP\/1\.1 200 Connection established/)
    for (const [refused, hostPort] of [[evil, "evilallowed.test:443"], [bare, "wild.test:443"], [unported, "allowed.test:8443"]] as const) {
      expectRefused({ status: statusOf(refused!), body: bodyOf(refused!) }, "CONNECT", hostPort)
    }
  })

  it("passes allowed TLS through untouched and cuts a ClientHello naming another server", async () => {
    const before = upstreamLog().length
    const [honest, fronted] = tlsThroughProxy({ target: "allowed.test:443", sni: "allowed.test" }, { target: "allowed.test:443", sni: "evil.test" })
    expect(honest!.connect).toBe("HTTP/1.1 200 Connection established")
    // The agent sees the upstream's own certificate: the proxy did not intercept.
    expect(honest!.cert).toBe(upstreamCert)
    expect(honest!.response).toContain("upstream answered over TLS")

    // Domain fronting: the tunnel is allowed for allowed.test, the handshake names evil.test.
    expect(fronted!.connect).toBe("HTTP/1.1 200 Connection established")
    expect(fronted!.error).toBeDefined()
    expect(fronted!.cert).toBeUndefined()
    expect(fronted!.response).toBeUndefined()

    let seen = upstreamLog().slice(before)
    for (let i = 0; i < 20 && !seen.some((l) => l.event === "tls-hello"); i++) {
      await sleep(100)
      seen = upstreamLog().slice(before)
    }
    // The upstream got one connection, a TLS ClientHello (record type 0x16) naming allowed.test; not a byte of the other.
    expect(seen.filter((l) => l.event === "tls-accept").map((l) => l.first!.slice(0, 2))).toEqual(["16"])
    expect(seen.filter((l) => l.event === "tls-hello").map((l) => l.sni)).toEqual(["allowed.test"])
    const refusal = proxyLog().find((l) => l["method"] === "TLS" && l["host"] === "evil.test")
    expect(refusal).toMatchObject({ bottle: "fenced", port: 443, verdict: "refused", rule: null })
    expect(String(refusal!["reason"])).toMatch(/server name.*allowed\.test/)
  })

  it("reaches neither the upstream's address nor its name directly, which a container on the egress network does", async () => {
    const ip = docker("inspect", "--format", `{{(index .NetworkSettings.Networks "${egressNet}").IPAddress}}`, upstream)
    expect(ip).toMatch(/^\d+\.\d+\.\d+\.\d+$/)
    // A direct GET to the address, to the name, and a lookup of the name; then the lookup of a name the agent does have.
    const script = `case "$1" in lookup:*) nslookup "\${1#lookup:}";; *) { printf 'GET / HTTP/1.0\\r\\nHost: allowed.test\\r\\n\\r\\n'; sleep 2; } | nc -w 3 "$1" 80;; esac`
    const probes = [ip, "allowed.test", "lookup:allowed.test", "lookup:egress"]
    const [[fromOutside, byNameOutside, lookupOutside], [fromAgent, byNameFromAgent, lookupFromAgent, lookupEgress]] = await Promise.all([
      shJobs(["run", "--rm", "--network", egressNet, AGENT_IMAGE], script, probes),
      shJobs(["exec", agent], script, probes)
    ])
    expect(bodyOf(fromOutside!)).toBe("upstream answered allowed.test")
    expect(bodyOf(byNameOutside!)).toBe("upstream answered allowed.test")
    expect(lookupOutside).toContain(ip)
    expect(fromAgent).not.toMatch(/HTTP\//)
    expect(byNameFromAgent).not.toMatch(/HTTP\//)
    expect(lookupEgress).toMatch(/Address:\s*\d+\.\d+\.\d+\.\d+\s*$/m)
    expect(lookupFromAgent).not.toContain(ip)
    expect(lookupFromAgent).not.toMatch(/Name:\s*allowed\.test/)
  })

  it("logs one JSON line per decision, naming the bottle, host, port, verdict and rule", async () => {
    const before = logLines(proxy).length
    const [allowed, refused] = await ask(get("http://a.wild.test/"), get("http://evilallowed.test/"))
    expect(allowed!.status).toBe(200)
    expect(refused!.status).toBe(403)
    // Every line of the log is JSON: nothing else shares the proxy's stdout and stderr.
    expect(logLines(proxy).filter((l) => !/^\{.*\}$/.test(l))).toEqual([])
    let lines = proxyLog()
    for (let i = 0; i < 30 && lines.length < before + 2; i++) {
      await sleep(100)
      lines = proxyLog()
    }
    const added = lines.slice(before).sort((a, b) => String(a["host"]).localeCompare(String(b["host"])))
    expect(added).toEqual([
      { time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/), bottle: "fenced", method: "GET", host: "a.wild.test", port: 80, verdict: "allowed", rule: "*.wild.test", reason: "allow list" },
      { time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/), bottle: "fenced", method: "GET", host: "evilallowed.test", port: 80, verdict: "refused", rule: null, reason: "not in the allow list" }
    ])
    // Every decision carries the same fields.
    for (const l of lines.filter((l) => "verdict" in l)) expect(Object.keys(l).sort()).toEqual(["bottle", "host", "method", "port", "reason", "rule", "time", "verdict"])
  })
})
