/** Spec loading: every class of bad input names file, line and field; good input resolves paths. */
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { loadSpecs, type LoadContext } from "../src/resources/loadSpecs.js"
import type { SpecProblem } from "../src/resources/specError.js"

const dir = () => mkdtempSync(join(tmpdir(), "bottle-spec-"))
const write = (d: string, name: string, text: string) => {
  const p = join(d, name)
  writeFileSync(p, text)
  return p
}
const head = (name: string) => `apiVersion: bottle/v1\nkind: Bottle\nmetadata:\n  name: ${name}\nspec:\n  image: claude-bottle:latest\n`

/** The host as loading sees it in these tests: a home of its own, nothing else special. */
export const host: LoadContext = { home: "/nonexistent-home", bottleHome: "/nonexistent-home/.claude-bottle", engineSockets: ["/var/run/docker.sock"], memoryBytes: undefined, cpus: undefined, env: {}, secretKey: () => Buffer.alloc(32, 7), prefix: "claude-bottle" }

const problems = (files: ReadonlyArray<string>) =>
  loadSpecs(files, "default", host).pipe(
    Effect.either,
    Effect.map((e): ReadonlyArray<SpecProblem> => (Either.isLeft(e) ? e.left.problems : [])),
    Effect.provide(NodeContext.layer)
  )

/** [description, file text, expected line, expected field, message fragment] */
const badYaml: ReadonlyArray<[string, string, number, string, string]> = [
  ["syntax error", `${head("a")}  env: {A: "1"\n`, 8, "", "YAML"],
  ["unknown key", `${head("a")}  imagePullPolicy: Always\n`, 7, "spec.imagePullPolicy", "is unexpected"],
  ["wrong type", `${head("a")}  preserve: "sure"\n`, 7, "spec.preserve", "Expected boolean"],
  ["bad name", head("Not_A_Label"), 4, "metadata.name", "RFC 1123"],
  ["name too long", head("a".repeat(41)), 4, "metadata.name", "at most 40"],
  ["reserved name", head("sidecars-x"), 4, "metadata.name", "sidecars-"],
  ["octal-looking env value", `${head("a")}  env: {A: 010}\n`, 7, "spec.env.A", "ambiguous"],
  ["YAML 1.1 boolean env value", `${head("a")}  env:\n    B: on\n`, 8, "spec.env.B", "ambiguous"],
  ["number env value", `${head("a")}  env:\n    C: 10\n`, 8, "spec.env.C", "Expected string"],
  ["merge key", `base: &b {image: x}\n---\n${head("a")}  env:\n    <<: {A: "1"}\n`, 10, "spec.env.<<", "merge keys"],
  ["custom tag", `${head("a")}  prompt: !include prompt.md\n`, 7, "spec.prompt", "YAML tag !include is not allowed"],
  ["__proto__ key", `${head("a")}  env:\n    __proto__: {polluted: "yes"}\n`, 8, "spec.env.__proto__", "not allowed"],
  ["missing promptFile", `${head("a")}  promptFile: ./nope.md\n`, 7, "spec.promptFile", "nope.md does not exist"],
  ["prompt and promptFile", `${head("a")}  prompt: hi\n  promptFile: ./p.md\n`, 8, "spec.promptFile", "not both"],
  ["missing skill", `${head("a")}  skills: [./skills/none]\n`, 7, "spec.skills[0]", "does not exist"],
  ["bad backend", `${head("a")}  backend: nomad\n`, 7, "spec.backend", "Expected \"docker\""],
  ["namespace on docker", `${head("a")}  namespace: team-a\n`, 7, "spec.namespace", "only the kubernetes backend"],
  ["a namespace that is no DNS label", `${head("a")}  backend: kubernetes\n  namespace: Team_A\n`, 8, "spec.namespace", "DNS label"],
  ["workspace on kubernetes", `${head("a")}  backend: kubernetes\n  workspace: .\n`, 8, "spec.workspace", "kubernetes backend"],
  ["a name a Service cannot take, on kubernetes", `${head("9lives")}  backend: kubernetes\n`, 4, "metadata.name", "starts with a letter"],
  ["a user name on kubernetes", `${head("a")}  backend: kubernetes\n  user: node\n`, 8, "spec.user", "numeric uid"],
  ["bad domain", `${head("a")}  egress:\n    allow: ["http://x.com/"]\n`, 8, "spec.egress.allow[0]", "not a URL"],
  ["bad memory", `${head("a")}  resources: {memory: lots}\n`, 7, "spec.resources.memory", "size"],
  ["memory 0 (Docker would read: no limit)", `${head("a")}  resources: {memory: "0"}\n`, 7, "spec.resources.memory", "at least 6m"],
  ["memory under Docker's least", `${head("a")}  resources: {memory: 4m}\n`, 7, "spec.resources.memory", "at least 6m"],
  ["command on smolmachines", `${head("a")}  backend: smolmachines\n  command: [claude]\n`, 8, "spec.command", "smolmachines"],
  ["wrong apiVersion", head("a").replace("bottle/v1", "bottle/v2"), 1, "apiVersion", "bottle/v1"],
  // Input that crashed or slipped through before (the trust issue):
  ["a recursive alias", `${head("a")}  env: &e {A: *e}\n`, 7, "spec.env.A", "recursive alias"],
  ["a python object tag", `${head("a")}  prompt: !!python/object:os.system ls\n`, 7, "spec.prompt", "YAML tag !!python/object:os.system is not allowed"],
  ["flow nesting 1000 deep", `${head("a")}  env: ${"[".repeat(1000)}${"]".repeat(1000)}\n`, 7, "", "nested too deeply"],
  ["resources retyped as a list", `${head("a")}  resources: [1]\n`, 7, "spec.resources", "Expected a mapping of cpus, memory and pids, actual [1]"],
  ["memory beyond any machine", `${head("a")}  resources: {memory: 99999999999999999999g}\n`, 7, "spec.resources.memory", "more memory than any machine"],
  ["cpus below Docker's least", `${head("a")}  resources: {cpus: 1e-7}\n`, 7, "spec.resources.cpus", "at least 0.01"],
  ["an image name beyond Docker's limit", `${head("a").replace("claude-bottle:latest", "a".repeat(300_000))}`, 6, "spec.image", "at most 255"],
  ["egress.allow: *", `${head("a")}  egress: {allow: ["*"]}\n`, 7, "spec.egress.allow[0]", "every host"],
  ["egress.allow: an IP address", `${head("a")}  egress: {allow: [10.1.2.3]}\n`, 7, "spec.egress.allow[0]", "IP addresses"],
  ["egress.allow: a whole top-level domain", `${head("a")}  egress: {allow: ["*.com"]}\n`, 7, "spec.egress.allow[0]", "top-level domain"],
  ["a port with pipelock, which cannot limit ports", `${head("a")}  egress: {proxy: pipelock, allow: ["x.test:8443"]}\n`, 7, "spec.egress.allow[0]", "pipelock cannot limit"],
  ["a secret injected for a host not allowed", `${head("a")}  egress: {allow: [a.test]}\n  secrets:\n    K: {from: "env:K", inject: {host: b.test, header: x-api-key}}\n`, 9, "spec.secrets.K.inject.host", "not in egress.allow"],
  ["a secret injected with pipelock", `${head("a")}  egress: {proxy: pipelock, allow: [a.test]}\n  secrets:\n    K: {from: "env:K", inject: {host: a.test, header: x-api-key}}\n`, 9, "spec.secrets.K.inject", "pipelock cannot put a secret"],
  ["a secret injected for a wildcard", `${head("a")}  egress: {allow: ["*.a.test"]}\n  secrets:\n    K: {from: "env:K", inject: {host: "*.a.test", header: x-api-key}}\n`, 9, "spec.secrets.K.inject.host", "without a wildcard"],
  ["a secret also set in env", `${head("a")}  env: {K: "1"}\n  secrets:\n    K: {from: "env:K"}\n`, 9, "spec.secrets.K", "also set in env"],
  ["a secret from somewhere else", `${head("a")}  secrets:\n    K: {from: "vault:k"}\n`, 8, "spec.secrets.K.from", "env:VARIABLE or file:PATH"],
  ["a format without {value}", `${head("a")}  egress: {allow: [a.test]}\n  secrets:\n    K: {from: "env:K", inject: {host: a.test, header: authorization, format: "Bearer"}}\n`, 9, "spec.secrets.K.inject.format", "must hold {value}"],
  ["both image and build", `${head("a")}  build: {context: .}\n`, 7, "spec.build", "not both"],
  ["a missing workspace", `${head("a")}  workspace: ./nope\n`, 7, "spec.workspace", "does not exist"]
]

describe("loadSpecs rejects bad input with file, line and field", () => {
  for (const [what, text, line, field, fragment] of badYaml) {
    it.effect(what, () =>
      Effect.gen(function* () {
        const d = dir()
        const file = write(d, "spec.yaml", text)
        const ps = yield* problems([file])
        // One complaint per mistake: no restatements beside it.
        expect(ps, JSON.stringify(ps)).toHaveLength(1)
        const p = ps[0]!
        expect(p.file).toBe(file)
        expect({ line: p.line, field: p.field }).toEqual({ line, field })
        expect(p.message).toContain(fragment)
      })
    )
  }

  it.effect("an alias bomb", () =>
    Effect.gen(function* () {
      const levels = ["a: &a [x, x, x, x, x, x, x, x, x]"]
      for (let i = 1; i < 9; i++) levels.push(`${"abcdefghij"[i]}: &${"abcdefghij"[i]} [${Array(9).fill(`*${"abcdefghij"[i - 1]}`).join(", ")}]`)
      const file = write(dir(), "bomb.yaml", `${head("a")}  env: {}\nextra:\n${levels.map((l) => `  ${l}`).join("\n")}\n`)
      const started = Date.now()
      const ps = yield* problems([file])
      expect(Date.now() - started).toBeLessThan(2_000)
      expect(ps, JSON.stringify(ps)).toHaveLength(1)
      expect(ps[0]!.file).toBe(file)
      expect(ps[0]!.message).toContain("alias bomb")
    }))

  it.effect("block nesting 1000 deep", () =>
    Effect.gen(function* () {
      const deep = Array.from({ length: 1000 }, (_, i) => `${"  ".repeat(i + 1)}k${i}:`).join("\n")
      const file = write(dir(), "deep.yaml", `${head("a")}  env:\n${deep.replace(/^ {2}/gm, "    ")} x\n`)
      const ps = yield* problems([file])
      expect(ps).toHaveLength(1)
      expect(ps[0]!.file).toBe(file)
      expect(ps[0]!.message).toMatch(/nested (more than 32 levels deep|too deeply)/)
    }))

  it.effect("a spec file that is a device or a FIFO is refused without reading it", () =>
    Effect.gen(function* () {
      const ps = yield* problems(["/dev/zero"])
      expect(ps[0]).toMatchObject({ file: "/dev/zero" })
      expect(ps[0]!.message).toContain("is a device, not a regular file")
    }))

  it.effect("a huge file, before parsing it", () =>
    Effect.gen(function* () {
      const file = write(dir(), "huge.yaml", `${head("a")}  prompt: "${"x".repeat(1024 * 1024 + 10)}"\n`)
      const ps = yield* problems([file])
      expect(ps[0]!.message).toContain("larger than 1 MiB")
    }))

  it.effect("a duplicate name across files, naming the first", () =>
    Effect.gen(function* () {
      const d = dir()
      const one = write(d, "one.yaml", head("same"))
      const two = write(d, "two.yaml", `# comment\n${head("same")}`)
      const ps = yield* problems([one, two])
      expect(ps).toHaveLength(1)
      expect(ps[0]).toMatchObject({ file: two, line: 5, field: "metadata.name" })
      expect(ps[0]!.message).toContain(`first defined at ${one}:4`)
    }))

  it.effect("TOML syntax errors and unknown keys with their lines", () =>
    Effect.gen(function* () {
      const d = dir()
      const broken = write(d, "b.toml", `apiVersion = "bottle/v1"\nkind = "Bottle"\n[metadata\nname = "a"\n`)
      expect((yield* problems([broken]))[0]).toMatchObject({ file: broken, line: 3 })
      const unknown = write(d, "u.toml", `apiVersion = "bottle/v1"\nkind = "Bottle"\n[metadata]\nname = "a"\n[spec]\nimage = "x:1"\ncolour = "red"\n`)
      expect((yield* problems([unknown]))[0]).toMatchObject({ file: unknown, line: 7, field: "spec.colour" })
    }))

  it.effect("a path that does not exist", () =>
    Effect.gen(function* () {
      const ps = yield* problems(["/nonexistent/spec.yaml"])
      expect(ps[0]!.message).toContain("no such file")
    }))
})

describe("loadSpecs accepts good input", () => {
  it.effect("multi-document YAML, TOML and directories; paths relative to the spec file", () =>
    Effect.gen(function* () {
      const d = dir()
      mkdirSync(join(d, "prompts"))
      mkdirSync(join(d, "skills", "web"), { recursive: true })
      write(d, "prompts/p.md", "Do research.")
      write(d, "a.yaml", `${head("a")}  promptFile: prompts/p.md\n  skills: [skills/web]\n  env: {A: "010", B: "on"}\n---\n${head("b")}  resources: {memory: 512m, pids: 64, cpus: 1.5}\n`)
      write(d, "c.toml", `apiVersion = "bottle/v1"\nkind = "Bottle"\n[metadata]\nname = "c"\n[spec]\nimage = "x:1"\nbackend = "smolmachines"\n`)
      write(d, "notes.txt", "not a spec")
      const bottles = yield* loadSpecs([d], "team", host).pipe(Effect.provide(NodeContext.layer))
      expect(bottles.map((b) => b.name)).toEqual(["a", "b", "c"])
      const [a, b, c] = bottles
      expect(a!.prompt).toBe("Do research.")
      expect(a!.skills.map((s) => s.source)).toEqual([join(d, "skills", "web")])
      expect(a!.env).toEqual({ A: "010", B: "on" })
      expect(a!.set).toBe("team")
      expect(b!.resources).toEqual({ cpus: 1.5, memoryBytes: 512 * 1024 ** 2, pids: 64 })
      expect(c!.backend).toBe("smolmachines")
    }))

  it.effect("the shipped example specs", () =>
    Effect.gen(function* () {
      const bottles = yield* loadSpecs(["specs"], "default", host).pipe(Effect.provide(NodeContext.layer))
      expect(bottles.map((b) => b.name)).toEqual(["claude", "coder", "demo-researcher", "demo-reviewer", "researcher", "reviewer", "vm-researcher", "writer"])
      expect(bottles.find((b) => b.name === "coder")?.kubernetes).toEqual({ namespace: "bottle-team", runtimeClassName: undefined })
    }))
})
