/**
 * The fence holds, and bottle proves it, on a real engine:
 * - every drift that opens a way out (done by hand with the docker CLI, as a
 *   confused user or a compromised tool would) makes `diff` exit 1 naming it,
 *   `apply` repairs it, and `diff` is then in sync;
 * - the probe catches each broken property when it is broken on purpose, and
 *   `apply` stops an agent whose fence does not hold;
 * - a bottle with no allow list has no proxy and no way out at all.
 */
import { execFileSync, spawnSync } from "node:child_process"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { AGENT_IMAGE, bottle, docker, dockerOk, EGRESS_IMAGE, engineAvailable, ensureTestImages, scrub, uniquePrefix } from "../support/docker.js"
import { firstHost, parseCidr } from "../../src/resources/subnets.js"

const available = engineAvailable()

describe.skipIf(!available)("the fence, as observed", () => {
  const prefix = uniquePrefix("fence")
  const home = mkdtempSync(join(tmpdir(), "bottle-home-"))
  const env = { BOTTLE_PREFIX: prefix, BOTTLE_HOME: home, BOTTLE_EGRESS_IMAGE: EGRESS_IMAGE, BOTTLE_SMOLVM: "/nonexistent/smolvm" }
  const file = join(mkdtempSync(join(tmpdir(), "bottle-specs-")), "b.yaml")
  const agent = `${prefix}-b-agent-1`
  const proxy = `${prefix}-b-egress-1`
  const internal = `${prefix}-b_internal`
  const extra: Array<string> = []

  beforeAll(() => {
    ensureTestImages()
    writeFileSync(file, `apiVersion: bottle/v1\nkind: Bottle\nmetadata: { name: b }\nspec:\n  image: ${AGENT_IMAGE}\n  egress: { allow: [api.anthropic.com] }\n  resources: { memory: 128m, pids: 64 }\n`)
    const r = bottle(env, "apply", "-f", file)
    if (r.status !== 0) throw new Error(`apply failed: ${r.stdout}${r.stderr}`)
  })
  afterAll(() => {
    for (const c of extra) dockerOk("rm", "-f", c)
    scrub(prefix)
  })

  /** diff names the drift (exit 1), apply repairs it, diff is then in sync and the fence holds. */
  const seenAndRepaired = (cause: RegExp) => {
    const d = bottle(env, "diff", "-f", file)
    expect(d.status, d.stdout + d.stderr).toBe(1)
    expect(d.stdout).toMatch(cause)
    const a = bottle(env, "apply", "-f", file, "--yes")
    expect(a.status, a.stdout + a.stderr).toBe(0)
    expect(a.stdout).toContain("fence holds")
    const again = bottle(env, "diff", "-f", file)
    expect(again.status, again.stdout).toBe(0)
  }
  /** The labels of a container, as `--label` flags: what a copy made by hand would carry. */
  const labelFlags = (container: string) =>
    Object.entries(JSON.parse(docker("inspect", "--format", "{{json .Config.Labels}}", container)) as Record<string, string>).flatMap(([k, v]) => ["--label", `${k}=${v}`])

  it("starts in sync", () => {
    expect(bottle(env, "diff", "-f", file).status).toBe(0)
  })

  it("the agent connected to Docker's default bridge", () => {
    docker("network", "connect", "bridge", agent)
    seenAndRepaired(/-\/\+ container \S+-b-agent-1 {2}\(drift: attached to network bridge\)/)
  })

  it("the agent re-made by hand with bottle's labels copied, the engine's socket mounted, SYS_ADMIN and the default bridge", () => {
    const labels = labelFlags(agent)
    docker("rm", "-f", agent)
    docker("run", "-d", "--name", agent, ...labels, "-v", "/var/run/docker.sock:/var/run/docker.sock", "--cap-add", "SYS_ADMIN", "--network", "bridge", AGENT_IMAGE)
    seenAndRepaired(/-\/\+ container \S+-b-agent-1 {2}\(drift: /)
    const binds = docker("inspect", "--format", "{{json .HostConfig.Binds}}", agent)
    expect(binds).not.toContain("docker.sock")
  })

  it("the proxy re-run with the same image and labels but another command", () => {
    const labels = labelFlags(proxy)
    docker("rm", "-f", proxy)
    docker("run", "-d", "--name", proxy, ...labels, "--network", internal, "--network-alias", "egress", EGRESS_IMAGE, "python3", "-m", "http.server", "8888")
    seenAndRepaired(/-\/\+ container \S+-b-egress-1 {2}\(drift: /)
  })

  it("the internal network re-made as an ordinary one, its labels copied", () => {
    const labels = Object.entries(JSON.parse(docker("network", "inspect", "--format", "{{json .Labels}}", internal)) as Record<string, string>).flatMap(([k, v]) => ["--label", `${k}=${v}`])
    docker("rm", "-f", agent, proxy)
    docker("network", "rm", internal)
    docker("network", "create", ...labels, internal)
    seenAndRepaired(/-\/\+ network \S+-b_internal {2}\(drift: not internal/)
    expect(docker("network", "inspect", "--format", "{{.Internal}}", internal)).toBe("true")
  })

  it("the proxy disconnected from the egress network", () => {
    docker("network", "disconnect", `${prefix}-b_egress`, proxy)
    seenAndRepaired(/-\/\+ container \S+-b-egress-1 {2}\(drift: not attached to network \S+-b_egress\)/)
  })

  it("the agent's limits lifted and its restart policy changed in place", () => {
    docker("update", "--pids-limit", "-1", "--restart", "always", agent)
    seenAndRepaired(/-\/\+ container \S+-b-agent-1 {2}\(drift: (pids limit is none \(want 64\)|restart policy)/)
  })

  describe("the probe, with properties broken on purpose (bottle verify does not repair; it reports)", () => {
    it("holds on the bottle as made, and get shows it", () => {
      const v = bottle(env, "verify", "b")
      expect(v.status, v.stdout + v.stderr).toBe(0)
      expect(v.stdout).toContain("b: fence holds")
      for (const p of ["proxy answers", "proxy refuses a host not allowed", "no direct route out", "host and gateways unreachable", "no outside DNS", "no IPv6 address"]) {
        expect(v.stdout).toMatch(new RegExp(`ok +${p}`))
      }
      expect(bottle(env, "get").stdout).toMatch(/\bb\s+default\s+running\s+present\s+ok \d+s ago/)
    })

    it("the agent on the default bridge: a way out and the host are reachable; exit 1 naming them", () => {
      docker("network", "connect", "bridge", agent)
      const v = bottle(env, "verify", "b", "-o", "json")
      expect(v.status, v.stdout + v.stderr).toBe(1)
      const failed = JSON.parse(v.stdout).bottles[0].properties.filter((p: { ok: boolean }) => !p.ok).map((p: { name: string }) => p.name)
      expect(failed).toContain("no direct route out")
      expect(failed).toContain("host and gateways unreachable")
      expect(bottle(env, "get").stdout).toMatch(/FAILED \d+s ago \(.*no direct route out/)
    })

    it("apply repairs it, proves it again, and exit 0", () => {
      const a = bottle(env, "apply", "-f", file, "--yes")
      expect(a.status, a.stdout).toBe(0)
      expect(bottle(env, "verify", "b").status).toBe(0)
    })

    it("a proxy that lets everything through is caught: the refusal property fails", () => {
      // The real proxy swapped for an open one on the same alias (nothing of bottle's, just what a broken proxy looks like).
      const open = `${prefix}-openproxy`
      extra.push(open)
      docker("stop", "-t", "0", proxy)
      docker("run", "-d", "--name", open, "--network", internal, "--network-alias", "egress", "--user", "65534", "--tmpfs", "/tmp", EGRESS_IMAGE,
        "mitmdump", "--listen-port", "8888", "--set", "confdir=/tmp/m")
      for (let i = 0; i < 100 && !dockerOk("exec", open, "python3", "-c", "import socket; socket.create_connection(('127.0.0.1', 8888), 1)"); i++) execFileSync("sleep", ["0.1"])
      const v = bottle(env, "verify", "b", "-o", "json")
      expect(v.status, v.stdout).toBe(1)
      const props = JSON.parse(v.stdout).bottles[0].properties as Array<{ name: string; ok: boolean; detail: string }>
      // It does not refuse (it tries to reach the host, and on an internal network that never answers in time).
      expect(props.find((p) => p.name === "proxy refuses a host not allowed")).toMatchObject({ ok: false })
      docker("rm", "-f", open)
      docker("start", proxy)
    })

    it("a resolver that answers outside names is caught (a covert channel)", () => {
      // A resolver that gives every name an address, and a container whose resolv.conf points at it; the probe runs in its namespace.
      const net = `${prefix}-dnsnet`
      const dns = `${prefix}-fakedns`
      const victim = `${prefix}-leaky`
      extra.push(dns, victim)
      docker("network", "create", net)
      try {
        docker("run", "-d", "--name", dns, "--network", net, EGRESS_IMAGE, "python3", "-c", FAKE_DNS)
        const ip = docker("inspect", "--format", `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`, dns)
        docker("run", "-d", "--name", victim, "--network", net, "--dns", ip, "--label", "dev.bottle.managed-by=bottle", AGENT_IMAGE)
        const out = probeIn(victim, ["example.com"])
        const dnsProp = out.properties.find((p) => p.name === "no outside DNS")
        expect(dnsProp, JSON.stringify(out)).toMatchObject({ ok: false })
        expect(dnsProp!.detail).toContain("example.com -> 10.9.9.9")
        // The same probe in the bottle's own agent finds nothing resolves: the check tells the two apart.
        expect(probeIn(agent, ["example.com"]).properties.find((p) => p.name === "no outside DNS")).toMatchObject({ ok: true })
      } finally {
        dockerOk("rm", "-f", dns, victim)
        dockerOk("network", "rm", net)
      }
    })
  })

  it("a fence that fails at apply stops the agent: exit 1 naming the property, never left running unfenced", () => {
    // A proxy image that says it is ready and lets everything through: bottle's addon is swapped, on the way to python
    // (which bottle's launcher and mitmdump alike run), for one that only prints the ready line. The agent's way out is open.
    const openImage = `${prefix}-open-mitmproxy:latest`
    const ctx = mkdtempSync(join(tmpdir(), "bottle-open-"))
    writeFileSync(join(ctx, "Dockerfile"), `FROM ${EGRESS_IMAGE}\nCOPY python3 /usr/local/bin/python3\nCOPY open.py /open.py\n`)
    writeFileSync(join(ctx, "open.py"), "import json\nclass Open:\n    def running(self):\n        print(json.dumps({'event': 'ready'}), flush=True)\naddons = [Open()]\n")
    writeFileSync(join(ctx, "python3"), "#!/bin/sh\n# -s ADDON becomes -s /open.py: an open proxy\nskip=0\nfor a do shift; if [ $skip = 1 ]; then skip=0; set -- \"$@\" /open.py; continue; fi; if [ \"$a\" = -s ]; then skip=1; fi; set -- \"$@\" \"$a\"; done\nexec /usr/bin/python3 \"$@\"\n", { mode: 0o755 })
    docker("build", "-q", "-t", openImage, ctx)
    try {
      const spec2 = join(mkdtempSync(join(tmpdir(), "bottle-specs-")), "c.yaml")
      writeFileSync(spec2, `apiVersion: bottle/v1\nkind: Bottle\nmetadata: { name: c }\nspec:\n  image: ${AGENT_IMAGE}\n  egress: { allow: [api.anthropic.com] }\n  resources: { memory: 64m, pids: 32 }\n  sidecars: { egress: { image: "${openImage}" } }\n`)
      const r = bottle(env, "apply", "-f", spec2)
      expect(r.status, r.stdout + r.stderr).toBe(1)
      expect(r.stdout).toMatch(/FAILED VerifyBottle \S+-c-agent-1: fence broken: proxy refuses a host not allowed: .*the agent was stopped/)
      expect(docker("inspect", "--format", "{{.State.Running}}", `${prefix}-c-agent-1`)).toBe("false")
      expect(bottle(env, "get").stdout).toMatch(/\bc\s+default\s+\S+\s+present\s+FAILED \d+s ago \(proxy refuses a host not allowed\)/)
    } finally {
      dockerOk("rm", "-f", `${prefix}-c-agent-1`, `${prefix}-c-egress-1`)
      dockerOk("rmi", openImage)
    }
  })
})

describe.skipIf(!available)("a bottle with an empty allow list", () => {
  const prefix = uniquePrefix("closed")
  const home = mkdtempSync(join(tmpdir(), "bottle-home-"))
  const env = { BOTTLE_PREFIX: prefix, BOTTLE_HOME: home, BOTTLE_EGRESS_IMAGE: EGRESS_IMAGE, BOTTLE_SMOLVM: "/nonexistent/smolvm" }
  afterAll(() => scrub(prefix))

  it("has no proxy and no egress network, and the probe confirms there is no way out at all", () => {
    ensureTestImages()
    const file = join(mkdtempSync(join(tmpdir(), "bottle-specs-")), "b.yaml")
    writeFileSync(file, `apiVersion: bottle/v1\nkind: Bottle\nmetadata: { name: shut }\nspec:\n  image: ${AGENT_IMAGE}\n  egress: { allow: [] }\n  resources: { memory: 64m }\n`)
    const r = bottle(env, "apply", "-f", file)
    expect(r.status, r.stdout + r.stderr).toBe(0)
    expect(r.stdout).toContain("Plan: 3 to add")
    expect(dockerOk("inspect", `${prefix}-shut-egress-1`)).toBe(false)
    expect(dockerOk("network", "inspect", `${prefix}-shut_egress`)).toBe(false)
    expect(docker("exec", `${prefix}-shut-agent-1`, "env")).not.toContain("HTTPS_PROXY")
    const v = bottle(env, "verify", "shut", "-o", "json")
    expect(v.status, v.stdout).toBe(0)
    const props = JSON.parse(v.stdout).bottles[0].properties.map((p: { name: string }) => p.name)
    expect(props).not.toContain("proxy answers")
    expect(props).toEqual(expect.arrayContaining(["no direct route out", "host and gateways unreachable", "no outside DNS"]))
  })
})

/** A resolver that answers every A question with 10.9.9.9. */
const FAKE_DNS = String.raw`
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 53))
while True:
    q, peer = s.recvfrom(512)
    end = 12
    while q[end] != 0:
        end += q[end] + 1
    question = q[12:end + 5]
    answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton("10.9.9.9")
    s.sendto(q[:2] + b"\x81\x80" + struct.pack(">HHHH", 1, 1, 0, 0) + question + answer, peer)
`

/** Runs bottle's own probe script in a container's network namespace and returns its verdict. */
const probeIn = (container: string, dnsNames: ReadonlyArray<string>): { properties: Array<{ name: string; ok: boolean; detail: string }> } => {
  const input = { mode: "verify", proxy: null, refusedHost: "verify.bottle.invalid", hostTargets: [], publicAddresses: ["1.1.1.1"], dnsNames, timeout: 1 }
  return JSON.parse(docker("run", "--rm", "--network", `container:${container}`, EGRESS_IMAGE, "python3", "-c", PROBE_SCRIPT, JSON.stringify(input)))
}

import { PROBE_SCRIPT } from "../../src/resources/probeScript.js"

describe.skipIf(!available)("the probe on a host with many addresses (100 bottles: hundreds of bridges)", () => {
  /** The probe as verify runs it: its own container, at most 64 processes and threads. */
  const probe = (hostTargets: ReadonlyArray<{ host: string; port: number }>) => {
    const input = { mode: "verify", proxy: null, refusedHost: "verify.bottle.invalid", hostTargets, publicAddresses: ["1.1.1.1"], dnsNames: [], timeout: 1 }
    const r = spawnSync("docker", ["run", "--rm", "--pids-limit", "64", "--memory", "64m", "--cap-drop", "ALL", "--user", "65534:65534", EGRESS_IMAGE, "python3", "-c", PROBE_SCRIPT, JSON.stringify(input)], { encoding: "utf8", timeout: 60_000 })
    expect(r.stderr).not.toContain("can't start new thread")
    return JSON.parse(r.stdout.trim().split("\n").pop() ?? "") as { properties: Array<{ name: string; ok: boolean; detail: string }> }
  }
  // Addresses on the default bridge's /16 that no container holds: nothing answers (no ARP reply), so every try
  // waits out the timeout. (Outside addresses will not do: this machine's network answers for any of them.)
  const bridge = () => docker("network", "inspect", "bridge", "--format", "{{(index .IPAM.Config 0).Subnet}}")
  const silent = () => {
    const [a, b] = bridge().split(".")
    return Array.from({ length: 300 }, (_, i) => ({ host: `${a}.${b}.${250 + (i % 5)}.${(i % 250) + 1}`, port: 20000 + i }))
  }

  it("tries every address at once within its 64 threads, and still gives its verdict in one timeout", () => {
    ensureTestImages()
    const t = Date.now()
    expect(bridge()).toMatch(/\/16$/)
    const v = probe(silent())
    const hosts = v.properties.find((p) => p.name === "host and gateways unreachable")!
    expect(hosts).toMatchObject({ ok: true, detail: "300 addresses tried, none answered" })
    expect(Date.now() - t).toBeLessThan(15_000)
  })

  it("among them, still sees the one that answers (the default bridge's gateway refusing a port is the host answering)", () => {
    // Docker 20.10 leaves the gateway out of the default bridge's IPAM when it made the bridge itself: then it is the subnet's first host.
    const subnet = parseCidr(bridge())
    const gateway = docker("network", "inspect", "bridge", "--format", "{{(index .IPAM.Config 0).Gateway}}") || (typeof subnet === "string" ? subnet : firstHost(subnet))
    expect(gateway).toMatch(/^\d+\.\d+\.\d+\.\d+$/)
    const v = probe([...silent(), { host: gateway, port: 1 }])
    const hosts = v.properties.find((p) => p.name === "host and gateways unreachable")!
    expect(hosts.ok).toBe(false)
    expect(hosts.detail).toContain(`${gateway}:1 (refused: the host answered)`)
  })
})
