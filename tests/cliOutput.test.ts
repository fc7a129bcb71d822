/**
 * The help @effect/cli renders is plain text where bottle's own output is
 * (no terminal, or NO_COLOR): `bottle --help | less` and log files get no
 * escape codes. In a terminal without NO_COLOR it keeps its colour. These
 * run the bundle, which `npm test` builds first.
 */
import { spawnSync } from "node:child_process"
import { cpSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { BIN } from "./support/docker.js"

const home = mkdtempSync(join(tmpdir(), "bottle-cli-output-"))
afterAll(() => rmSync(home, { recursive: true, force: true }))

const ESC = "\u001b["
const env = (extra: Record<string, string>) => {
  const e: NodeJS.ProcessEnv = { ...process.env, BOTTLE_HOME: home, ...extra }
  if (!("NO_COLOR" in extra)) delete e["NO_COLOR"]
  return e
}

describe("help output", () => {
  it("is plain text when written to a pipe, for the tool and for a command", () => {
    for (const args of [["--help"], ["apply", "--help"]]) {
      const r = spawnSync(process.execPath, [BIN, ...args], { env: env({}), encoding: "utf8", timeout: 30_000 })
      expect(r.status).toBe(0)
      expect(r.stdout).toContain("bottle")
      expect(r.stdout.includes(ESC), r.stdout.slice(0, 200)).toBe(false)
    }
  })

  it("is plain text in a terminal with NO_COLOR, and coloured in a terminal without it", () => {
    const script = spawnSync("script", ["--version"], { encoding: "utf8" })
    if (script.status !== 0) return void console.warn("*** SKIPPED: no script(1) to give bottle a terminal ***")
    const inTerminal = (extra: Record<string, string>) =>
      spawnSync("script", ["-qec", `${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} --help`, "/dev/null"], { env: env(extra), encoding: "utf8", timeout: 30_000 }).stdout
    expect(inTerminal({ NO_COLOR: "1" }).includes(ESC)).toBe(false)
    expect(inTerminal({}).includes(ESC)).toBe(true)
  })
})

describe("an entry that cannot load the command tree", () => {
  it("is exit 2 with what went wrong, not node's exit 1", () => {
    const dist = join(home, "dist")
    cpSync(dirname(BIN), dist, { recursive: true })
    rmSync(join(dist, "app.cjs"))
    const r = spawnSync(process.execPath, [join(dist, "bottle.cjs"), "get"], { env: env({ NO_COLOR: "1" }), encoding: "utf8", timeout: 30_000 })
    expect(r.status).toBe(2)
    expect(r.stderr).toContain("bottle: unexpected failure")
    expect(r.stderr).toContain("app.cjs")
  })
})
