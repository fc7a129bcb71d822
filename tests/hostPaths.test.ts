/**
 * Host paths never reach the agent raw. The skills escape (a skill path that
 * is or holds the engine's socket gave the agent the host) and its relatives
 * are spec errors naming file, line and field; what is accepted is read as
 * a bounded copy of regular files and directories.
 */
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs"
import { createServer, type Server } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, Either } from "effect"
import { afterAll, beforeAll } from "vitest"
import { loadSpecs, type LoadContext } from "../src/resources/loadSpecs.js"
import type { SpecProblem } from "../src/resources/specError.js"

const root = mkdtempSync(join(tmpdir(), "bottle-hostpaths-"))
const home = join(root, "home")
const engineDir = join(root, "run")
const socket = join(engineDir, "docker.sock")
const host: LoadContext = { home, bottleHome: join(home, ".claude-bottle"), engineSockets: [socket], memoryBytes: undefined, cpus: undefined, env: {}, secretKey: () => Buffer.alloc(32, 7), prefix: "claude-bottle" }
let server: Server

beforeAll(async () => {
  mkdirSync(join(home, ".claude-bottle", "state", "other"), { recursive: true })
  mkdirSync(join(home, ".ssh"), { recursive: true })
  mkdirSync(engineDir)
  server = createServer()
  await new Promise<void>((r) => server.listen(socket, r))
})
afterAll(() => { server.close() })

const spec = (body: string) => {
  const d = mkdtempSync(join(root, "spec-"))
  const file = join(d, "b.yaml")
  writeFileSync(file, `apiVersion: bottle/v1\nkind: Bottle\nmetadata:\n  name: b\nspec:\n  image: agent:1\n${body}`)
  return { d, file }
}
const load = (file: string) =>
  loadSpecs([file], "default", host).pipe(Effect.either, Effect.provide(NodeContext.layer))
const problemsOf = (file: string) =>
  load(file).pipe(Effect.map((r): ReadonlyArray<SpecProblem> => (Either.isLeft(r) ? r.left.problems : [])))

describe("host paths a spec may not hand to an agent", () => {
  const cases: ReadonlyArray<[string, () => string, string, string]> = [
    ["skills: [/]", () => "  skills: [/]\n", "spec.skills[0]", "root of the file system"],
    ["skills: [/var/run]", () => "  skills: [/var/run]\n", "spec.skills[0]", "system directory"],
    ["skills: [/etc]", () => "  skills: [/etc]\n", "spec.skills[0]", "system directory /etc"],
    ["a skill dir holding the engine's socket", () => `  skills: [${engineDir}]\n`, "spec.skills[0]", "container engine's socket"],
    ["the engine's socket itself", () => `  skills: [${socket}]\n`, "spec.skills[0]", "container engine's socket"],
    ["promptFile: the engine's socket", () => `  promptFile: ${socket}\n`, "spec.promptFile", "container engine's socket"],
    ["a skill under BOTTLE_HOME", () => `  skills: [${join(home, ".claude-bottle", "state", "other")}]\n`, "spec.skills[0]", "bottle's own state"],
    ["the home directory itself", () => `  skills: [${home}]\n`, "spec.skills[0]", "your home directory"],
    ["a credentials dir", () => `  skills: [${join(home, ".ssh")}]\n`, "spec.skills[0]", "credentials"],
    ["promptFile: /dev/zero", () => "  promptFile: /dev/zero\n", "spec.promptFile", "system directory /dev"],
    ["promptFile: /etc/shadow", () => "  promptFile: /etc/shadow\n", "spec.promptFile", "system directory /etc"]
  ]
  for (const [what, body, field, fragment] of cases) {
    it.effect(what, () =>
      Effect.gen(function* () {
        const { file } = spec(body())
        const ps = yield* problemsOf(file)
        expect(ps, JSON.stringify(ps)).toHaveLength(1)
        expect(ps[0]).toMatchObject({ file, line: 7, field })
        expect(ps[0]!.message).toContain(fragment)
      }))
  }

  it.effect("a symlink to one of them is judged by where it leads", () =>
    Effect.gen(function* () {
      const { d, file } = spec("  skills: [./innocent]\n")
      symlinkSync("/etc", join(d, "innocent"))
      const ps = yield* problemsOf(file)
      expect(ps[0]!.message).toContain("(/etc) is the system directory /etc")
    }))
})

describe("what a skill may hold", () => {
  it.effect("a socket inside a skill dir is refused, naming it", () =>
    Effect.gen(function* () {
      const { d, file } = spec("  skills: [./s]\n")
      mkdirSync(join(d, "s"))
      const inner = createServer()
      yield* Effect.promise(() => new Promise<void>((r) => inner.listen(join(d, "s", "x.sock"), r)))
      const ps = yield* problemsOf(file)
      inner.close()
      expect(ps[0]).toMatchObject({ field: "spec.skills[0]", line: 7 })
      expect(ps[0]!.message).toContain("x.sock is a socket")
    }))

  it.effect("a symlink leading out of the skill (to /etc) is refused; one inside it is copied as what it points to", () =>
    Effect.gen(function* () {
      const { d, file } = spec("  skills: [./s]\n")
      mkdirSync(join(d, "s", "docs"), { recursive: true })
      writeFileSync(join(d, "s", "docs", "a.md"), "alpha")
      symlinkSync("docs/a.md", join(d, "s", "link.md"))
      const ok = yield* load(file)
      expect(Either.isRight(ok)).toBe(true)
      const tree = Either.isRight(ok) ? ok.right[0]!.skills[0]! : undefined
      expect(tree?.files.map((f) => [f.path, f.content.toString()])).toEqual([["docs/a.md", "alpha"], ["link.md", "alpha"]])
      symlinkSync("/etc", join(d, "s", "etc"))
      const ps = yield* problemsOf(file)
      expect(ps[0]!.message).toContain("leading out of")
    }))

  it.effect("a FIFO as promptFile or inside a skill is refused without blocking", () =>
    Effect.gen(function* () {
      const { d, file } = spec("  promptFile: ./p.fifo\n")
      execFileSync("mkfifo", [join(d, "p.fifo")])
      const ps = yield* problemsOf(file)
      expect(ps[0]!.message).toContain("is a FIFO, not a regular file")
    }), 5_000)

  it.effect("a prompt file larger than the limit is refused, read no further than the limit", () =>
    Effect.gen(function* () {
      const { d, file } = spec("  promptFile: ./big.md\n")
      writeFileSync(join(d, "big.md"), "x".repeat(1024 * 1024 + 1))
      const ps = yield* problemsOf(file)
      expect(ps[0]!.message).toContain("larger than 1 MiB")
    }))
})
