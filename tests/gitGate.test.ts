/**
 * The git gate and the supervisor, as specs declare them and as bottle
 * realises them: remotes over SSH with pinned host keys, the gate's key a
 * secret the agent never gets, the agent's git pointed at the gate, both
 * sidecars hardened and on the networks they need only; and what an agent
 * asks the supervisor for, read back without trusting it. Pure, except the
 * loads (which read temp files).
 */
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { parseGitRemoteUrl, parseHostKey } from "../src/resources/gitRemote.js"
import { normaliseImageRef } from "../src/resources/imageRef.js"
import { agentGitEnv, gateUrl } from "../src/resources/gitGate.js"
import { loadSpecs, type LoadContext } from "../src/resources/loadSpecs.js"
import { addAllowEntry } from "../src/resources/parseDocuments.js"
import { realiseDocker } from "../src/resources/realise.js"
import type { SpecProblem } from "../src/resources/specError.js"
import { egressTarget, parseRequest, shown } from "../src/resources/supervise.js"
import { lineDiff } from "../src/cli/requests.js"
import { bottle, ctx } from "./support/fixtures.js"

const KEY = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"

describe("git remotes", () => {
  it("reads ssh:// and scp-like URLs, with every spelling the agent may use", () => {
    const a = parseGitRemoteUrl("git@github.com:me/repo.git")
    expect(a).toMatchObject({ user: "git", host: "github.com", port: 22, path: "me/repo.git", knownHostsName: "github.com" })
    expect(typeof a !== "string" && a.spellings).toEqual(["git@github.com:me/repo.git", "ssh://git@github.com/me/repo.git", "https://github.com/me/repo.git"])
    const b = parseGitRemoteUrl("ssh://deploy@Git.Example.org:2222/srv/x.git")
    expect(b).toMatchObject({ user: "deploy", host: "git.example.org", port: 2222, knownHostsName: "[git.example.org]:2222" })
  })

  it.each([
    ["https://github.com/me/repo.git", "SSH only"],
    ["file:///etc/passwd", "SSH only"],
    ["ext::sh -c touch% /tmp/pwned", "not a git remote URL"],
    ["git@github.com:me/repo.git; rm -rf /", "path must be plain"],
    ["git@github.com:../../etc", "no '..'"],
    ["-oProxyCommand=evil@host:x", "not a plain user name"],
    ["git@-oProxyCommand=evil:x", "not a host name"]
  ])("refuses %s", (url, fragment) => {
    const r = parseGitRemoteUrl(url)
    expect(typeof r).toBe("string")
    expect(r).toContain(fragment)
  })

  it("pins host keys by name only: no wildcards, markers or hashed names", () => {
    expect(parseHostKey(`github.com ssh-ed25519 ${KEY}`)).toMatchObject({ names: ["github.com"] })
    expect(parseHostKey(`*.example.com ssh-ed25519 ${KEY}`)).toContain("wildcards")
    expect(parseHostKey(`@cert-authority example.com ssh-ed25519 ${KEY}`)).toContain("markers")
    expect(parseHostKey(`|1|abc|def ssh-ed25519 ${KEY}`)).toContain("hashed")
    expect(parseHostKey(`github.com ssh-ed25519 ${KEY}\nevil.com ssh-ed25519 ${KEY}`)).toContain("one line")
  })
})

const dir = mkdtempSync(join(tmpdir(), "bottle-gitspec-"))
const host: LoadContext = {
  home: "/nonexistent-home", bottleHome: "/nonexistent-home/.claude-bottle", engineSockets: ["/var/run/docker.sock"], memoryBytes: undefined, cpus: undefined,
  env: { DEPLOY_KEY: "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----", TOKEN: "t0k3n" },
  secretKey: () => Buffer.alloc(32, 7), prefix: "claude-bottle", sidecarImages: { git: "gate:1", supervise: "sup:1" }, superviseServer: join(dir, "server.cjs")
}
writeFileSync(join(dir, "server.cjs"), "// the server\n")

const spec = (gitBlock: string, extra = "") => {
  const p = join(dir, `s${Math.random().toString(36).slice(2)}.yaml`)
  writeFileSync(p, `apiVersion: bottle/v1\nkind: Bottle\nmetadata:\n  name: g\nspec:\n  image: agent:1\n  egress:\n    allow: [api.anthropic.com]\n${gitBlock}${extra}`)
  return p
}
const GIT = `  git:\n    remotes:\n      - { name: origin, url: "git@github.com:me/repo.git", push: true, sshKey: DEPLOY_KEY }\n    hostKeys:\n      - "github.com ssh-ed25519 ${KEY}"\n`
const SECRETS = `  secrets:\n    DEPLOY_KEY: { from: env:DEPLOY_KEY }\n    TOKEN: { from: env:TOKEN }\n`

const load = (file: string) => loadSpecs([file], "default", host).pipe(Effect.either, Effect.provide(NodeContext.layer))
const problemsOf = (file: string) => load(file).pipe(Effect.map((e): ReadonlyArray<SpecProblem> => (Either.isLeft(e) ? e.left.problems : [])))

describe("a spec with a git gate and a supervisor", () => {
  it.effect("realises a hardened gate on both networks, a supervisor on the internal one only, and an agent that never sees the gate's key", () =>
    Effect.gen(function* () {
      const loaded = yield* load(spec(GIT, `${SECRETS}  supervise: true\n`))
      if (Either.isLeft(loaded)) throw new Error(JSON.stringify(loaded.left.problems))
      const b = loaded.right[0]!
      expect(b.git?.remotes[0]).toMatchObject({ name: "origin", push: true, sshKey: "DEPLOY_KEY" })
      const r = realiseDocker(b, ctx)
      expect(r.containers.map((c) => c.service)).toEqual(["egress", "git", "supervise", "agent"])
      const gate = r.containers.find((c) => c.service === "git")!
      const sup = r.containers.find((c) => c.service === "supervise")!
      const agent = r.containers.find((c) => c.service === "agent")!
      for (const c of [gate, sup]) {
        expect(c.body.HostConfig).toMatchObject({ CapDrop: ["ALL"], SecurityOpt: ["no-new-privileges:true"], ReadonlyRootfs: true, NetworkMode: "claude-bottle-g_internal" })
        expect(c.ready).toBeDefined()
      }
      expect(gate.connect.map((x) => x.network)).toEqual(["claude-bottle-g_egress"])
      expect(sup.connect).toEqual([])
      // The key: in the gate's config dir, private, never in the agent's environment.
      expect(r.stateDir.files["git/keys/origin"]).toMatchObject({ mode: 0o600, secret: "DEPLOY_KEY" })
      expect(agent.body.Env!.some((e) => e.startsWith("DEPLOY_KEY=") || e.includes("OPENSSH PRIVATE KEY"))).toBe(false)
      expect(agent.body.Env).toContain("TOKEN=t0k3n")
      // The agent's git goes to the gate, however the remote is spelled.
      expect(agent.body.Env).toContain(`GIT_CONFIG_KEY_0=url.${gateUrl("origin")}.insteadOf`)
      expect(agent.body.Env).toContain("GIT_CONFIG_VALUE_0=git@github.com:me/repo.git")
      expect(agent.body.Env).toContain("GIT_CONFIG_VALUE_2=https://github.com/me/repo.git")
      expect(agent.body.Env).toContain("BOTTLE_SUPERVISE_URL=http://supervise:9100/")
      expect(r.verify.sidecars.map((s) => s.name)).toEqual(["git gate", "supervisor"])
      // Neither the key nor its digest-less value is in any hash or label.
      expect(JSON.stringify(gate.body)).not.toContain("OPENSSH PRIVATE KEY")
    }))

  it.effect("a changed key replaces the gate, not the agent", () =>
    Effect.gen(function* () {
      const a = (yield* load(spec(GIT, SECRETS))).pipe(Either.getOrThrow)[0]!
      const other = { ...a, secrets: a.secrets.map((s) => (s.name === "DEPLOY_KEY" ? { ...s, value: "other", digest: "d2" } : s)) }
      const [r1, r2] = [realiseDocker(a, ctx), realiseDocker(other, ctx)]
      const hash = (r: typeof r1, s: string) => r.containers.find((c) => c.service === s)!.hash
      expect(hash(r1, "git")).not.toBe(hash(r2, "git"))
      expect(hash(r1, "agent")).toBe(hash(r2, "agent"))
    }))

  it.effect("a bottle with a gate and no allow list still gets an egress network (for the gate alone) and no proxy", () =>
    Effect.gen(function* () {
      const b = (yield* load(spec(GIT, SECRETS))).pipe(Either.getOrThrow)[0]!
      const r = realiseDocker({ ...b, egressAllow: [] }, ctx)
      expect(r.networks.map((n) => n.role)).toEqual(["internal", "egress"])
      expect(r.containers.map((c) => c.service)).toEqual(["git", "agent"])
      expect(r.containers.find((c) => c.service === "agent")!.body.Env!.some((e) => e.startsWith("HTTPS_PROXY="))).toBe(false)
    }))

  it.effect.each([
    ["an unpinned host", GIT.replace(`github.com ssh-ed25519`, `gitlab.com ssh-ed25519`), SECRETS, "spec.git.remotes[0].url", "no key for github.com in git.hostKeys"],
    ["a key that is no secret", GIT, "", "spec.git.remotes[0].sshKey", "names no secret"],
    ["a key the proxy injects", GIT, `  secrets:\n    DEPLOY_KEY: { from: env:DEPLOY_KEY, inject: { host: api.anthropic.com, header: x-api-key } }\n`, "spec.git.remotes[0].sshKey", "injected by the proxy"],
    ["an https remote", GIT.replace("git@github.com:me/repo.git", "https://github.com/me/repo.git"), SECRETS, "spec.git.remotes[0].url", "SSH only"],
    ["two remotes of one name", GIT.replace("    hostKeys:", `      - { name: origin, url: "git@github.com:me/other.git" }\n    hostKeys:`), SECRETS, "spec.git.remotes[1].name", "declared twice"]
  ])("refuses %s, naming the field", ([, git, secrets, field, fragment]) =>
    Effect.gen(function* () {
      const ps = yield* problemsOf(spec(git, secrets))
      expect(ps.map((p) => `${p.field}: ${p.message}`).join("\n")).toContain(`${field}`)
      expect(ps.find((p) => p.field === field)?.message).toContain(fragment)
    }))
})

describe("supervisor requests", () => {
  it("reads back only well-formed requests of the bottle whose queue holds them", () => {
    const good = { id: "r0123456789ab", bottle: "g", kind: "egress", what: "pypi.org", reason: "packages", at: "2026-11-23T10:00:00Z" }
    expect(parseRequest(JSON.stringify(good), "g")).toMatchObject({ what: "pypi.org" })
    expect(parseRequest(JSON.stringify(good), "other")).toBeUndefined()
    expect(parseRequest(JSON.stringify({ ...good, what: "*.evil.com" }), "g")).toBeUndefined()
    expect(parseRequest(JSON.stringify({ ...good, what: "10.0.0.1" }), "g")).toBeUndefined()
    expect(parseRequest(JSON.stringify({ ...good, id: "../../x" }), "g")).toBeUndefined()
    expect(parseRequest("not json", "g")).toBeUndefined()
  })

  it("turns an egress ask into what egress.allow holds", () => {
    expect(egressTarget("PyPI.org.", undefined)).toBe("pypi.org")
    expect(egressTarget("pypi.org", 443)).toBe("pypi.org")
    expect(egressTarget("pypi.org", 8443)).toBe("pypi.org:8443")
    expect(egressTarget("*.pypi.org", undefined)).toMatchObject({ problem: expect.stringContaining("no wildcard") })
  })

  it("shows an agent's words with no terminal escapes, on one line", () => {
    expect(shown("ok\u001b[2J\u001b]0;pwned\u0007\nnext\u202eline")).toBe("ok [2J ]0;pwned next line")
    expect(shown("x".repeat(500), 20)).toHaveLength(20)
  })

  it("adds an approved host to the right bottle's allow list, every other byte kept", () => {
    const text = `# mine\napiVersion: bottle/v1\nkind: Bottle\nmetadata:\n  name: a   # first\nspec:\n  image: x:1\n  egress:\n    allow: [api.anthropic.com]   # keep\n---\napiVersion: bottle/v1\nkind: Bottle\nmetadata: { name: b }\nspec:\n  image: x:1\n  egress:\n    allow:\n      - one.example.com   # c\n`
    const a = addAllowEntry(text, "a", "pypi.org")
    expect(a).toEqual({ _tag: "Changed", text: text.replace("allow: [api.anthropic.com]", "allow: [api.anthropic.com, pypi.org]") })
    const b = addAllowEntry(text, "b", "pypi.org:8443")
    expect(b).toEqual({ _tag: "Changed", text: text.replace("      - one.example.com   # c\n", "      - one.example.com   # c\n      - \"pypi.org:8443\"\n") })
    expect(addAllowEntry(text, "a", "api.anthropic.com")).toEqual({ _tag: "Already" })
    expect(addAllowEntry(text, "zzz", "pypi.org")._tag).toBe("Err")
    expect(lineDiff("s.yaml", text, (a as { text: string }).text)).toContain("+    allow: [api.anthropic.com, pypi.org]   # keep")
  })
})

describe("the agent's git config", () => {
  it("counts its pairs, so git reads every one", () => {
    const env = agentGitEnv({ remotes: [{ name: "a", url: "u", push: false, sshKey: undefined, spellings: ["u", "v"] }], hostKeys: [], image: "", build: undefined })
    expect(env).toEqual(["GIT_CONFIG_COUNT=2", `GIT_CONFIG_KEY_0=url.${gateUrl("a")}.insteadOf`, "GIT_CONFIG_VALUE_0=u", `GIT_CONFIG_KEY_1=url.${gateUrl("a")}.insteadOf`, "GIT_CONFIG_VALUE_1=v"])
  })
  it("realises an agent env for a plain bottle without any git variable", () => {
    const r = realiseDocker(bottle("plain"), ctx)
    expect(r.containers.find((c) => c.service === "agent")!.body.Env!.some((e) => e.startsWith("GIT_CONFIG_"))).toBe(false)
  })
})

describe("the gate's image from bottle's recipe", () => {
  it("is built once for every bottle that needs it, before any gate is made; not at all when the Engine has it", async () => {
    const { plan } = await import("../src/reconcilers/plan.js")
    const { emptyWorld, observed, options } = await import("./support/fixtures.js")
    const build = { context: "/opt/bottle/images/git-gate", dockerfile: "Dockerfile", args: {}, hash: "f".repeat(64) }
    const git = { remotes: [{ name: "o", url: "git@h.example:x", push: false, sshKey: undefined, spellings: ["git@h.example:x"] }], hostKeys: [], image: "claude-bottle-git-gate:ffffffffffffffff", build }
    const bottles = [bottle("a", { git }), bottle("b", { git })]
    const p = plan(bottles, observed(emptyWorld()), options())
    const builds = p.actions.filter((a) => a._tag === "BuildImage")
    expect(builds.map((a) => a.resource)).toEqual(["claude-bottle-git-gate:ffffffffffffffff"])
    for (const name of ["a", "b"]) {
      const create = p.actions.find((a) => a._tag === "CreateContainer" && a.resource === `claude-bottle-${name}-git-1`)!
      expect(create.after).toContain(builds[0]!.id)
    }
    const w = emptyWorld()
    w.images[normaliseImageRef("claude-bottle-git-gate:ffffffffffffffff")] = "sha256:gate"
    expect(plan(bottles, observed(w), options()).actions.some((a) => a._tag === "BuildImage")).toBe(false)
  })
})
