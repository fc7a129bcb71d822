/**
 * The smolmachines backend end to end: the machine side against the fake
 * smolvm (tests/fake-smolvm, which follows ../shared/smolvm-cli.md), the
 * sidecar bundle against the real Docker Engine.
 */
import { execFileSync, spawnSync } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { AGENT_IMAGE, BIN, bottle, docker, EGRESS_IMAGE, engineAvailable, ensureTestImages, leftovers, ROOT, scrub, uniquePrefix } from "../support/docker.js"

const available = engineAvailable()
const FAKE = join(ROOT, "tests", "fake-smolvm", "smolvm")

interface Machine { name: string; state: string; labels: Record<string, string>; env: Record<string, string>; allow_cidrs: Array<string>; image: string | null }

const vmSpec = (name: string, env: Record<string, string> = {}) =>
  `apiVersion: bottle/v1\nkind: Bottle\nmetadata: { name: ${name} }\nspec:\n  backend: smolmachines\n  image: ghcr.io/example/agent:1\n  env: ${JSON.stringify(env)}\n  egress: { allow: [api.anthropic.com] }\n  resources: { cpus: 1, memory: 512m }\n`
const dockerSpec = (name: string) =>
  `apiVersion: bottle/v1\nkind: Bottle\nmetadata: { name: ${name} }\nspec:\n  image: ${AGENT_IMAGE}\n  resources: { memory: 64m }\n`

describe.skipIf(!available)("smolmachines bottles", () => {
  const prefix = uniquePrefix("vm")
  const home = mkdtempSync(join(tmpdir(), "bottle-home-"))
  const dir = mkdtempSync(join(tmpdir(), "bottle-specs-"))
  const stateFile = join(home, "fake-smolvm.json")
  const env = { BOTTLE_PREFIX: prefix, BOTTLE_HOME: home, BOTTLE_EGRESS_IMAGE: EGRESS_IMAGE, BOTTLE_SMOLVM: FAKE, FAKE_SMOLVM_STATE: stateFile }
  const smolvm = (...args: ReadonlyArray<string>) => execFileSync(FAKE, args, { env: { ...process.env, FAKE_SMOLVM_STATE: stateFile }, encoding: "utf8" })
  const machines = (): Array<Machine> => JSON.parse(smolvm("machine", "ls", "--json"))
  const machine = (name: string) => machines().find((m) => m.name === name)
  const file = (name: string, text: string) => {
    const f = join(dir, name)
    writeFileSync(f, text)
    return f
  }
  const vm = `${prefix}-thinker`
  const bundle = `${prefix}-sidecars-thinker`

  beforeAll(() => {
    ensureTestImages()
    // A machine that is not bottle's: never touched.
    smolvm("machine", "create", "--name", "someone-elses-vm", "-I", "alpine:3")
    smolvm("machine", "start", "--name", "someone-elses-vm")
  })
  afterAll(() => scrub(prefix))

  it("applies: bundle network and container up, machine running with egress limited to the bundle", () => {
    const f = file("vm.yaml", vmSpec("thinker"))
    const r = bottle(env, "apply", "-f", f)
    expect(r.status, r.stdout + r.stderr).toBe(0)
    const ip = docker("inspect", "--format", `{{(index .NetworkSettings.Networks "${prefix}-bundle-thinker").IPAddress}}`, bundle)
    expect(ip).toMatch(/^\d+\.\d+\.\d+\.\d+$/)
    expect(docker("inspect", "--format", "{{.State.Status}}", bundle)).toBe("running")
    const m = machine(vm)!
    expect(m.state).toBe("running")
    expect(m.allow_cidrs).toEqual([`${ip}/32`])
    expect(m.env).toMatchObject({ HTTPS_PROXY: `http://${ip}:8888`, HTTP_PROXY: `http://${ip}:8888`, BOTTLE_NAME: "thinker" })
    expect(m.labels).toMatchObject({ "dev.bottle.managed-by": "bottle", "dev.bottle.bottle": "thinker", "dev.bottle.set": "default", "dev.bottle.egress-ip": ip })
    expect(m.image).toBe("ghcr.io/example/agent:1")
    expect(JSON.parse(readFileSync(join(home, "state", "thinker", "metadata.json"), "utf8"))).toMatchObject({ backend: "smolmachines" })
    expect(bottle(env, "diff", "-f", f).status).toBe(0)
    const get = bottle(env, "get")
    expect(get.stdout).toMatch(/smolmachines\s+thinker\s+default\s+running/)
  })

  it("exec runs a command in the machine with smolvm machine exec, passing its exit code on; logs of the agent say why there are none", () => {
    const r = bottle({ ...env, FAKE_SMOLVM_EXEC: "host" }, "exec", "thinker", "--", "sh", "-c", "echo from-the-machine; exit 4")
    expect(r.status, r.stderr).toBe(4)
    expect(r.stdout).toContain("from-the-machine")
    const logs = bottle(env, "logs", "thinker")
    expect(logs.status).toBe(2)
    expect(logs.stderr).toContain("smolvm keeps a machine's console to itself")
    // The proxy's decisions are there, from its bundle.
    expect(bottle(env, "logs", "thinker", "--egress").status).toBe(0)
  })

  it("starts a machine stopped behind its back", () => {
    const f = join(dir, "vm.yaml")
    smolvm("machine", "stop", "--name", vm)
    const d = bottle(env, "diff", "-f", f)
    expect(d.status).toBe(1)
    expect(d.stdout).toContain(`~ machine start ${vm}  (stopped (stopped))`)
    expect(bottle(env, "apply", "-f", f).status).toBe(0)
    expect(machine(vm)!.state).toBe("running")
  })

  it("replaces the machine when the spec changes", () => {
    const f = file("vm.yaml", vmSpec("thinker", { MODE: "deep" }))
    const r = bottle(env, "apply", "-f", f, "--yes")
    expect(r.status, r.stdout + r.stderr).toBe(0)
    expect(r.stdout).toContain(`-/+ machine ${vm}  (spec changed: env)`)
    expect(machine(vm)).toMatchObject({ state: "running", env: expect.objectContaining({ MODE: "deep" }) })
    expect(bottle(env, "diff", "-f", f).status).toBe(0)
  })

  it("recreates a missing bundle, and the machine with it", () => {
    docker("rm", "-f", bundle)
    const f = join(dir, "vm.yaml")
    const r = bottle(env, "apply", "-f", f, "--yes")
    expect(r.status, r.stdout + r.stderr).toBe(0)
    const ip = docker("inspect", "--format", `{{(index .NetworkSettings.Networks "${prefix}-bundle-thinker").IPAddress}}`, bundle)
    expect(machine(vm)!.allow_cidrs).toEqual([`${ip}/32`])
  })

  it("applies and prunes a mixed spec in one plan with one y/N question", () => {
    const f = file("mixed.yaml", `${vmSpec("thinker", { MODE: "deep" })}---\n${dockerSpec("boxed")}`)
    expect(bottle(env, "apply", "-f", f).status).toBe(0)
    expect(docker("inspect", "--format", "{{.State.Status}}", `${prefix}-boxed-agent-1`)).toBe("running")
    // One listing, both backends.
    const g = bottle(env, "get")
    expect(g.status, g.stderr).toBe(0)
    expect(g.stdout).toMatch(/^smolmachines\s+thinker\s+default\s+running\s/m)
    expect(g.stdout).toMatch(/^docker\s+boxed\s+default\s+running\s.*agent:running/m)
    const command = [process.execPath, BIN, "reconcile", "--prune"].map((a) => `'${a}'`).join(" ")
    const r = spawnSync("script", ["-qefc", command, "/dev/null"], { input: "y\n", env: { ...process.env, NO_COLOR: "1", ...env }, encoding: "utf8", timeout: 60_000 })
    expect(r.status, r.stdout).toBe(0)
    expect(r.stdout.match(/\[y\/N\]/g)).toHaveLength(1)
    expect(r.stdout).toContain(`- machine ${vm}`)
    expect(r.stdout).toContain(`- container ${prefix}-boxed-agent-1`)
    expect(machine(vm)).toBeUndefined()
    expect(leftovers(prefix)).toEqual([])
    expect(existsSync(join(home, "state", "thinker"))).toBe(false)
    expect(machine("someone-elses-vm")?.state).toBe("running")
  })

  describe("when smolvm fails", () => {
    const failing: ReadonlyArray<[string, Record<string, string>, string]> = [
      ["ls exits non-zero", { FAKE_SMOLVM_FAIL_LS: "1" }, "machine ls --json failed"],
      ["ls prints garbage", { FAKE_SMOLVM_GARBAGE_LS: "1" }, "not JSON"],
      ["ls hangs", { FAKE_SMOLVM_HANG: "ls", BOTTLE_SMOLVM_TIMEOUT: "2" }, "did not finish within 2s"]
    ]
    for (const [what, faults, message] of failing) {
      it(`${what}: the plan is partial, no state dir is reaped, Docker-side work proceeds`, () => {
        const f = file("both.yaml", `${vmSpec("survivor")}---\n${dockerSpec("plain")}`)
        expect(bottle(env, "apply", "-f", f).status).toBe(0)
        // A dry run says the same: not a clean result.
        const dry = bottle({ ...env, ...faults }, "reconcile", "--prune", "--dry-run")
        expect(dry.status, dry.stdout + dry.stderr).toBe(1)
        expect(dry.stdout).toContain("Dry run: nothing was changed.")
        const started = Date.now()
        const r = bottle({ ...env, ...faults }, "reconcile", "--prune", "--yes")
        expect(Date.now() - started).toBeLessThan(30_000)
        expect(r.status, r.stdout + r.stderr).toBe(1)
        expect(r.stdout).toContain("observation incomplete: smolvm failed")
        expect(r.stdout).toContain(message)
        expect(r.stdout).toContain("blocked: observation incomplete")
        expect(existsSync(join(home, "state", "plain"))).toBe(true)
        expect(existsSync(join(home, "state", "survivor"))).toBe(true)
        // Docker-side work still happened; the bundle of a machine nobody could see stays.
        expect(leftovers(prefix).filter((l) => l.includes("plain"))).toEqual([])
        expect(leftovers(prefix)).toEqual(expect.arrayContaining([`container ${prefix}-sidecars-survivor`, `network ${prefix}-bundle-survivor`]))
        // Once smolvm answers again, a re-run converges.
        expect(bottle(env, "reconcile", "--prune", "--yes").status).toBe(0)
        expect(leftovers(prefix)).toEqual([])
        expect(machines().map((m) => m.name)).toEqual(["someone-elses-vm"])
      })
    }
  })

  it("a failed machine delete does not stop the rest of the prune; exit 1; a re-run converges", () => {
    const f = file("two.yaml", `${vmSpec("doomed")}---\n${vmSpec("fine")}`)
    expect(bottle(env, "apply", "-f", f).status).toBe(0)
    const r = bottle({ ...env, FAKE_SMOLVM_FAIL_DELETE: `${prefix}-doomed` }, "reconcile", "--prune", "--yes")
    expect(r.status, r.stdout + r.stderr).toBe(1)
    expect(r.stdout).toContain(`FAILED DeleteMachine ${prefix}-doomed`)
    expect(machine(`${prefix}-fine`)).toBeUndefined()
    expect(leftovers(prefix).filter((l) => l.includes("fine"))).toEqual([])
    expect(machine(`${prefix}-doomed`)).toBeDefined()
    expect(existsSync(join(home, "state", "doomed"))).toBe(true)
    expect(bottle(env, "reconcile", "--prune", "--yes").status).toBe(0)
    expect(machine(`${prefix}-doomed`)).toBeUndefined()
    expect(leftovers(prefix)).toEqual([])
  })

  it("refuses smolmachines bottles clearly when smolvm is missing or too old, and still does docker work", () => {
    const f = file("need.yaml", `${vmSpec("needy")}---\n${dockerSpec("ok")}`)
    for (const extra of [{ BOTTLE_SMOLVM: "/nonexistent/smolvm" }, { FAKE_SMOLVM_VERSION: "1.7.9" }]) {
      const r = bottle({ ...env, ...extra }, "apply", "-f", f)
      expect(r.status, r.stdout + r.stderr).toBe(1)
      expect(r.stdout).toMatch(/! bottle needy .*(not installed|too old)/)
      expect(docker("inspect", "--format", "{{.State.Status}}", `${prefix}-ok-agent-1`)).toBe("running")
      // A Docker-only spec is simply in sync there: no partial snapshot.
      const only = bottle({ ...env, ...extra }, "diff", "-f", file("only.yaml", dockerSpec("ok")))
      expect(only.status, only.stdout + only.stderr).toBe(0)
    }
    expect(bottle(env, "reconcile", "--prune", "--yes").status).toBe(0)
  })
})
