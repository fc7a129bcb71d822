/**
 * The foundation, end to end on a real Docker Engine: apply two bottles, see
 * drift, heal it, change one, prune one, clean up, and never touch a
 * container that is not bottle's.
 */
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { AGENT_IMAGE, bottle, containerId, httpGet, docker, dockerOk, EGRESS_IMAGE, engineAvailable, ensureTestImages, leftovers, scrub, uniquePrefix } from "../support/docker.js"

const available = engineAvailable()

const spec = (bottles: ReadonlyArray<{ name: string; env?: Record<string, string>; preserve?: boolean }>) =>
  bottles.map((b) => [
    "apiVersion: bottle/v1",
    "kind: Bottle",
    `metadata: { name: ${b.name} }`,
    "spec:",
    `  image: ${AGENT_IMAGE}`,
    `  env: ${JSON.stringify(b.env ?? { LOG_LEVEL: "info" })}`,
    "  egress: { allow: [api.anthropic.com] }",
    "  resources: { memory: 256m, pids: 128 }",
    `  preserve: ${b.preserve ?? false}`
  ].join("\n")).join("\n---\n")

describe.skipIf(!available)("bottle lifecycle on the Docker backend", () => {
  const prefix = uniquePrefix("life")
  const home = mkdtempSync(join(tmpdir(), "bottle-home-"))
  const env = { BOTTLE_PREFIX: prefix, BOTTLE_HOME: home, BOTTLE_EGRESS_IMAGE: EGRESS_IMAGE }
  const dir = mkdtempSync(join(tmpdir(), "bottle-specs-"))
  const file = join(dir, "bottles.yaml")
  const write = (text: string) => writeFileSync(file, text)
  const bystander = `bottle-bystander-${prefix}`
  const ids = () => Object.fromEntries(leftovers(prefix).filter((l) => l.startsWith("container ")).map((l) => l.slice(10)).map((n) => [n, containerId(n)]))
  const networkIds = () => Object.fromEntries(leftovers(prefix).filter((l) => l.startsWith("network ")).map((l) => l.slice(8)).map((n) => [n, docker("network", "inspect", "--format", "{{.Id}}", n)]))

  beforeAll(() => {
    ensureTestImages()
    docker("run", "-d", "--name", bystander, "--label", "dev.bottle.managed-by=bottle", AGENT_IMAGE)
  })
  afterAll(() => {
    dockerOk("rm", "-f", bystander)
    scrub(prefix)
  })

  it("applies two bottles, hardened and labelled like compose projects", () => {
    write(spec([{ name: "alpha" }, { name: "beta", preserve: true }]))
    const r = bottle(env, "apply", "-f", file)
    expect(r.stderr).toBe("")
    expect(r.status, r.stdout).toBe(0)
    expect(r.stdout).toContain("Plan: 10 to add, 0 to change, 0 to destroy.")
    for (const b of ["alpha", "beta"]) {
      expect(docker("inspect", "--format", "{{.State.Status}}", `${prefix}-${b}-agent-1`)).toBe("running")
      expect(docker("inspect", "--format", "{{.State.Status}}", `${prefix}-${b}-egress-1`)).toBe("running")
      const labels = JSON.parse(docker("inspect", "--format", "{{json .Config.Labels}}", `${prefix}-${b}-agent-1`))
      expect(labels).toMatchObject({
        "com.docker.compose.project": `${prefix}-${b}`, "com.docker.compose.service": "agent", "com.docker.compose.oneoff": "False",
        "dev.bottle.managed-by": "bottle", "dev.bottle.bottle": b, "dev.bottle.set": "default"
      })
      expect(labels["dev.bottle.spec-hash"]).toMatch(/^[0-9a-f]{64}$/)
      expect(docker("network", "inspect", "--format", "{{.Internal}}", `${prefix}-${b}_internal`)).toBe("true")
      expect(existsSync(join(home, "state", b, "metadata.json"))).toBe(true)
      expect(existsSync(join(home, "state", b, "workspace"))).toBe(true)
    }
    expect(existsSync(join(home, "state", "beta", ".preserve"))).toBe(true)
    const meta = JSON.parse(docker("run", "--rm", "-v", `${home}/state/alpha:/s:ro`, AGENT_IMAGE, "cat", "/s/metadata.json"))
    expect(meta).toMatchObject({ name: "alpha", backend: "docker", set: "default" })
    // The proxy got the allow list rendered from the spec, and enforces it.
    const policy = JSON.parse(readFileSync(join(home, "state", "alpha", "egress", "policy.json"), "utf8"))
    expect(policy.rules).toEqual([{ entry: "api.anthropic.com", domain: "api.anthropic.com", wildcard: false, ports: [443, 80] }])
    expect(httpGet(`${prefix}-alpha-agent-1`, "egress", 8888, "http://example.com/")).toMatch(/^HTTP\/1\.1 403/)
    // And apply proved the fence before calling it done.
    expect(r.stdout).toMatch(new RegExp(`done VerifyBottle ${prefix}-alpha-agent-1 \\(fence holds`))
    // docker compose sees it as an ordinary project.
    expect(docker("ps", "--filter", `label=com.docker.compose.project=${prefix}-alpha`, "--format", "{{.Names}}").split("\n").sort()).toEqual([`${prefix}-alpha-agent-1`, `${prefix}-alpha-egress-1`])
  })

  it("diff then exits 0, and a second apply changes nothing", () => {
    expect(bottle(env, "diff", "-f", file).status).toBe(0)
    const before = ids()
    const r = bottle(env, "apply", "-f", file)
    expect(r.status).toBe(0)
    expect(r.stdout).toContain("No changes.")
    expect(ids()).toEqual(before)
  })

  it("sees a container removed behind its back, and heals it", () => {
    docker("rm", "-f", `${prefix}-alpha-agent-1`)
    const d = bottle(env, "diff", "-f", file)
    expect(d.status).toBe(1)
    expect(d.stdout).toContain(`+ container ${prefix}-alpha-agent-1  (missing)`)
    expect(d.stdout).toContain("Plan: 1 to add, 0 to change, 0 to destroy.")
    expect(bottle(env, "apply", "-f", file).status).toBe(0)
    expect(docker("inspect", "--format", "{{.State.Status}}", `${prefix}-alpha-agent-1`)).toBe("running")
    expect(bottle(env, "diff", "-f", file).status).toBe(0)
  })

  it("starts a stopped container without replacing it", () => {
    const id = containerId(`${prefix}-beta-egress-1`)
    docker("stop", "-t", "0", `${prefix}-beta-egress-1`)
    const r = bottle(env, "apply", "-f", file)
    expect(r.stdout).toContain(`~ container start ${prefix}-beta-egress-1`)
    expect(containerId(`${prefix}-beta-egress-1`)).toBe(id)
    expect(docker("inspect", "--format", "{{.State.Status}}", `${prefix}-beta-egress-1`)).toBe("running")
  })

  it("replaces only the agent of the bottle whose env changed (asking first)", () => {
    const before = ids()
    write(spec([{ name: "alpha", env: { LOG_LEVEL: "debug" } }, { name: "beta", preserve: true }]))
    const refused = bottle(env, "apply", "-f", file)
    expect(refused.status).toBe(2)
    expect(refused.stderr).toContain("pass --yes")
    expect(ids()).toEqual(before)
    const r = bottle(env, "apply", "-f", file, "--yes")
    expect(r.status, r.stdout + r.stderr).toBe(0)
    expect(r.stdout).toContain(`-/+ container ${prefix}-alpha-agent-1  (spec changed: env)`)
    const after = ids()
    const changed = Object.keys(before).filter((n) => before[n] !== after[n])
    expect(changed).toEqual([`${prefix}-alpha-agent-1`])
    expect(docker("exec", `${prefix}-alpha-agent-1`, "sh", "-c", "echo $LOG_LEVEL")).toBe("debug")
  })

  it("apply --prune removes exactly the bottle dropped from the spec", () => {
    write(spec([{ name: "alpha", env: { LOG_LEVEL: "debug" } }, { name: "gamma" }]))
    expect(bottle(env, "apply", "-f", file).status).toBe(0)
    write(spec([{ name: "alpha", env: { LOG_LEVEL: "debug" } }]))
    const before = ids()
    const networksBefore = networkIds()
    const r = bottle(env, "apply", "-f", file, "--prune", "--yes")
    expect(r.status, r.stdout + r.stderr).toBe(0)
    const left = leftovers(prefix)
    expect(left.filter((l) => l.includes("gamma"))).toEqual([])
    expect(existsSync(join(home, "state", "gamma"))).toBe(false)
    // beta is preserved: its containers and networks go, its state dir stays.
    expect(left.filter((l) => l.includes("beta"))).toEqual([])
    expect(existsSync(join(home, "state", "beta"))).toBe(true)
    expect(r.stdout).toContain("blocked: preserve")
    // alpha, still in the spec, is untouched: every container and network the same object as before.
    const alpha = (o: Record<string, string>) => Object.fromEntries(Object.entries(o).filter(([n]) => n.includes("-alpha")))
    expect(Object.keys(alpha(before)).sort()).toEqual([`${prefix}-alpha-agent-1`, `${prefix}-alpha-egress-1`])
    expect(alpha(ids())).toEqual(alpha(before))
    expect(alpha(networkIds())).toEqual(alpha(networksBefore))
  })

  it("reconcile --prune --yes leaves nothing with the prefix, keeps the .preserve state dir and the bystander", () => {
    const r = bottle(env, "reconcile", "--prune", "--yes")
    expect(r.status, r.stdout + r.stderr).toBe(0)
    expect(leftovers(prefix)).toEqual([])
    expect(existsSync(join(home, "state", "alpha"))).toBe(false)
    expect(existsSync(join(home, "state", "beta", ".preserve"))).toBe(true)
    expect(docker("inspect", "--format", "{{.State.Status}}", bystander)).toBe("running")
    const again = bottle(env, "reconcile", "--prune", "--yes")
    expect(again.status).toBe(0)
    expect(again.stdout).toContain("Plan: 0 to add, 0 to change, 0 to destroy, 1 blocked.")
  })

  it("fails only the bottle whose image cannot be had, with a clear message", () => {
    write(spec([{ name: "delta" }]) + "\n---\n" + spec([{ name: "epsilon" }]).replace(AGENT_IMAGE, "bottle-test-no-such-image:none"))
    const r = bottle(env, "apply", "-f", file)
    expect(r.status).toBe(1)
    expect(r.stdout).toMatch(/FAILED CreateContainer \S+-epsilon-agent-1: .*bottle-test-no-such-image/)
    expect(docker("inspect", "--format", "{{.State.Status}}", `${prefix}-delta-agent-1`)).toBe("running")
    expect(bottle(env, "reconcile", "--prune", "--yes").status).toBe(0)
  })
})
