/**
 * Bad input through the real CLI: exit 2, a message naming file, line and
 * field, and nothing created or deleted.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { AGENT_IMAGE, bottle, engineAvailable, leftovers, uniquePrefix } from "../support/docker.js"

const available = engineAvailable()
const head = (name: string) => `apiVersion: bottle/v1\nkind: Bottle\nmetadata:\n  name: ${name}\nspec:\n  image: ${AGENT_IMAGE}\n`

describe.skipIf(!available)("bad input changes nothing", () => {
  const prefix = uniquePrefix("bad")
  const home = mkdtempSync(join(tmpdir(), "bottle-home-"))
  const dir = mkdtempSync(join(tmpdir(), "bottle-specs-"))
  const env = { BOTTLE_PREFIX: prefix, BOTTLE_HOME: home, BOTTLE_SMOLVM: "/nonexistent/smolvm" }
  mkdirSync(join(home, "state", "orphan"), { recursive: true })

  const cases: ReadonlyArray<[string, string, string]> = [
    ["syntax error", `${head("good")}---\n${head("a")}  env: [unclosed\n`, ":15:1: YAML"],
    ["unknown key", `${head("good")}  colour: red\n`, ":7:3: spec.colour: is unexpected"],
    ["wrong type", `${head("good")}  resources: { pids: many }\n`, ":7:16: spec.resources.pids: Expected number"],
    ["bad name", head("Bad_Name"), ":4:3: metadata.name: bottle name 'Bad_Name' must be an RFC 1123 label"],
    ["duplicate name", `${head("twin")}---\n${head("twin")}`, ":11:3: metadata.name: duplicate bottle name 'twin'"],
    ["missing promptFile", `${head("good")}  promptFile: ./missing.md\n`, ":7:3: spec.promptFile: prompt file "],
    ["coerced value", `${head("good")}  env: { A: 010, B: on }\n`, ":7:10: spec.env.A: '010' is ambiguous"]
  ]
  for (const [what, text, fragment] of cases) {
    it(`${what}: exit 2, located message, nothing changed`, () => {
      const file = join(dir, `${what.replace(/ /g, "-")}.yaml`)
      writeFileSync(file, text)
      for (const args of [["apply", "-f", file, "--yes"], ["diff", "-f", file], ["reconcile", "--prune", "--yes", "-f", file]]) {
        const r = bottle(env, ...args)
        expect(r.status, `${args.join(" ")}: ${r.stdout}${r.stderr}`).toBe(2)
        expect(r.stderr).toContain(`error: ${file}${fragment}`)
        expect(r.stderr).toContain("Nothing was changed.")
        expect(r.stdout).toBe("")
      }
      expect(leftovers(prefix)).toEqual([])
      expect(readdirSync(join(home, "state"))).toEqual(["orphan"])
    })
  }

  const flags: ReadonlyArray<[string, ReadonlyArray<string>, RegExp]> = [
    ["unknown flag", ["apply", "-f", dir, "--frobnicate"], /frobnicate/],
    ["concurrency out of range", ["apply", "-f", dir, "--concurrency", "0"], /concurrency|between/i],
    ["bad set name", ["apply", "-f", dir, "--set", "Not_A_Label"], /RFC 1123|set/],
    ["reconcile without --prune", ["reconcile", "--yes"], /needs --prune/],
    ["apply without -f", ["apply"], /at least one -f/],
    ["bad output", ["get", "-o", "yaml"], /table|json/]
  ]
  for (const [what, args, message] of flags) {
    it(`${what}: exit 2`, () => {
      const r = bottle(env, ...args)
      expect(r.status, r.stdout + r.stderr).toBe(2)
      expect(r.stdout + r.stderr).toMatch(message)
      expect(existsSync(join(home, "state", "orphan"))).toBe(true)
    })
  }

  it("a bad BOTTLE_PREFIX or BOTTLE_HOME is bad input", () => {
    expect(bottle({ ...env, BOTTLE_PREFIX: "Has Spaces" }, "get").status).toBe(2)
    const r = bottle({ ...env, BOTTLE_HOME: "relative/path" }, "get")
    expect(r.status).toBe(2)
    expect(r.stderr).toContain("BOTTLE_HOME")
  })

  it("-o json gives the plan as JSON", () => {
    const file = join(dir, "ok.json.yaml")
    writeFileSync(file, head("jsonned"))
    const r = bottle(env, "diff", "-f", file, "-o", "json")
    expect(r.status).toBe(1)
    const plan = JSON.parse(r.stdout)
    // No egress.allow: no proxy and no egress network, only the state dir, the internal network and the agent.
    expect(plan.summary).toEqual({ add: 3, change: 0, destroy: 0, blocked: 0, unchanged: 0 })
    expect(plan.actions[0]).toMatchObject({ type: "EnsureStateDir", bottle: "jsonned", kind: "state dir", cause: "missing" })
  })
})
