/**
 * The fence, on a real engine: from inside the agent only the egress proxy
 * answers. A listener on the host (0.0.0.0) is not reachable through the
 * internal network's gateway, nor through Docker's default bridge; the same
 * listener is reachable from an ordinary network, so the test can fail. A
 * server on Docker's default bridge that a neighbouring container reaches is
 * not reachable from the agent either.
 */
import { spawn, type ChildProcess } from "node:child_process"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { AGENT_IMAGE, bodyOf, bottle, docker, dockerOk, EGRESS_IMAGE, engineAvailable, ensureTestImages, httpGet, scrub, uniquePrefix } from "../support/docker.js"


const available = engineAvailable()

describe.skipIf(!available)("isolation of the agent container", () => {
  const prefix = uniquePrefix("iso")
  const home = mkdtempSync(join(tmpdir(), "bottle-home-"))
  const env = { BOTTLE_PREFIX: prefix, BOTTLE_HOME: home, BOTTLE_EGRESS_IMAGE: EGRESS_IMAGE }
  const agent = `${prefix}-fenced-agent-1`
  // The listener runs in a process of its own: docker exec blocks this one.
  let listener: ChildProcess | undefined
  let port = 0

  /** Whether a direct HTTP GET (proxy variables ignored) from inside a container gets an answer. */
  const reach = (container: string, host: string, p: number) => (httpGet(container, host, p).startsWith("HTTP/") ? "reached" : "blocked")

  beforeAll(async () => {
    ensureTestImages()
    listener = spawn(process.execPath, ["-e", "const s = require('http').createServer((q, r) => r.end('host says hi')).listen(0, '0.0.0.0', () => console.log(s.address().port))"], { stdio: ["ignore", "pipe", "inherit"] })
    port = await new Promise<number>((r) => listener!.stdout!.once("data", (d) => r(Number(String(d).trim()))))
    const file = join(mkdtempSync(join(tmpdir(), "bottle-specs-")), "fenced.yaml")
    writeFileSync(file, `apiVersion: bottle/v1\nkind: Bottle\nmetadata: { name: fenced }\nspec:\n  image: ${AGENT_IMAGE}\n  egress: { allow: [api.anthropic.com] }\n  resources: { memory: 128m, pids: 64, cpus: 0.5 }\n`)
    // apply waits for the proxy to answer before it starts the agent, then proves the fence.
    const r = bottle(env, "apply", "-f", file)
    if (r.status !== 0) throw new Error(`apply failed: ${r.stdout}${r.stderr}`)
  })
  afterAll(() => {
    listener?.kill()
    dockerOk("rm", "-f", `${prefix}-control`, `${prefix}-outside`, `${prefix}-neighbour`)
    scrub(prefix)
  })

  it("reaches the egress proxy by name, and the proxy refuses what is not allowed", () => {
    const answer = httpGet(agent, "egress", 8888, "http://example.com/")
    expect(answer).toMatch(/^HTTP\/1\.1 403/)
    expect(bodyOf(answer)).toContain("bottle 'fenced'")
    expect(docker("exec", agent, "sh", "-c", "echo $HTTPS_PROXY $HTTP_PROXY")).toBe("http://egress:8888 http://egress:8888")
  })

  it("cannot reach a host service through the internal network's gateway or the default bridge", () => {
    const gateway = docker("network", "inspect", "--format", "{{(index .IPAM.Config 0).Gateway}}", `${prefix}-fenced_internal`)
    const bridge = docker("network", "inspect", "--format", "{{(index .IPAM.Config 0).Gateway}}", "bridge")
    // The probe itself works from the agent (so "blocked" below is the fence, not a broken probe).
    expect(reach(agent, "egress", 8888)).toBe("reached")
    expect(reach(agent, gateway, port)).toBe("blocked")
    expect(reach(agent, bridge, port)).toBe("blocked")
    const egressGateway = docker("network", "inspect", "--format", "{{(index .IPAM.Config 0).Gateway}}", `${prefix}-fenced_egress`)
    expect(reach(agent, egressGateway, port)).toBe("blocked")
  })

  it("the same listener answers from an ordinary network (the check above can fail)", () => {
    const egressGateway = docker("network", "inspect", "--format", "{{(index .IPAM.Config 0).Gateway}}", `${prefix}-fenced_egress`)
    docker("run", "-d", "--name", `${prefix}-control`, "--network", `${prefix}-fenced_egress`, AGENT_IMAGE)
    expect(reach(`${prefix}-control`, egressGateway, port)).toBe("reached")
  })

  it("cannot reach an address outside its networks that an ordinary container reaches", () => {
    docker("run", "-d", "--name", `${prefix}-outside`, AGENT_IMAGE, "httpd", "-f", "-p", "8080", "-h", "/")
    docker("run", "-d", "--name", `${prefix}-neighbour`, AGENT_IMAGE)
    const ip = docker("inspect", "--format", "{{.NetworkSettings.IPAddress}}", `${prefix}-outside`)
    expect(ip).toMatch(/^\d+\.\d+\.\d+\.\d+$/)
    let neighbour = "blocked"
    for (let i = 0; i < 25 && neighbour === "blocked"; i++) neighbour = reach(`${prefix}-neighbour`, ip, 8080)
    expect(neighbour).toBe("reached")
    expect(reach(agent, ip, 8080)).toBe("blocked")
  })

  it("has the hardening in its HostConfig", () => {
    const host = JSON.parse(docker("inspect", "--format", "{{json .HostConfig}}", agent))
    expect(host.CapDrop).toEqual(["ALL"])
    expect(host.CapAdd ?? []).toEqual([])
    expect(host.SecurityOpt).toContain("no-new-privileges:true")
    expect(host.Privileged).toBe(false)
    expect(host.PidsLimit).toBe(64)
    expect(host.Memory).toBe(128 * 1024 * 1024)
    expect(host.NanoCpus).toBe(500_000_000)
    expect(host.NetworkMode).toBe(`${prefix}-fenced_internal`)
    expect(JSON.stringify(host.Binds)).not.toContain("docker.sock")
    expect(host.Binds).toEqual([`${home}/state/fenced/workspace:/workspace`, `${home}/state/fenced/agent:/bottle:ro`])
    const networks = Object.keys(JSON.parse(docker("inspect", "--format", "{{json .NetworkSettings.Networks}}", agent)))
    expect(networks).toEqual([`${prefix}-fenced_internal`])
    expect(docker("exec", agent, "sh", "-c", "grep CapEff /proc/self/status | cut -f2")).toBe("0000000000000000")
  })
})
