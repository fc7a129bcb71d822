/**
 * The one y/N question, asked on a real terminal (a pty from `script`):
 * shown once with the whole plan; "n" or no answer changes nothing and exits 0;
 * "y" goes ahead; nothing to do asks nothing.
 */
import { spawnSync } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { BIN, engineAvailable, EGRESS_IMAGE, uniquePrefix } from "../support/docker.js"

const hasScript = spawnSync("script", ["--version"]).status === 0
if (!hasScript) {
  const msg = "\n!!! NO `script` (util-linux): the y/N tests on a terminal are SKIPPED. !!!\n"
  if (process.env["CI"] === "true") throw new Error(`${msg}Under CI=true this is a failure.`)
  process.stderr.write(msg)
}
const available = engineAvailable() && hasScript

/** Runs the CLI on a pseudo-terminal, typing `input`. */
const onTerminal = (env: NodeJS.ProcessEnv, input: string, ...args: ReadonlyArray<string>) => {
  const command = [process.execPath, BIN, ...args].map((a) => `'${a}'`).join(" ")
  const r = spawnSync("script", ["-qefc", command, "/dev/null"], { input, env: { ...process.env, NO_COLOR: "1", ...env }, encoding: "utf8", timeout: 60_000 })
  return { status: r.status, out: r.stdout }
}

describe.skipIf(!available)("the y/N question", () => {
  const prefix = uniquePrefix("ask")
  const home = mkdtempSync(join(tmpdir(), "bottle-home-"))
  const env = { BOTTLE_PREFIX: prefix, BOTTLE_HOME: home, BOTTLE_EGRESS_IMAGE: EGRESS_IMAGE, BOTTLE_SMOLVM: "/nonexistent/smolvm" }
  const orphan = join(home, "state", "orphan")
  mkdirSync(orphan, { recursive: true })
  writeFileSync(join(orphan, "metadata.json"), JSON.stringify({ managedBy: "bottle", prefix, name: "orphan", set: "default" }))
  afterAll(() => undefined)

  it("'n' changes nothing and exits 0, after showing the plan once", () => {
    const r = onTerminal(env, "n\n", "reconcile", "--prune")
    expect(r.status).toBe(0)
    expect(r.out.match(/Plan: /g)).toHaveLength(1)
    expect(r.out).toContain(`- state dir ${orphan}`)
    expect(r.out).toContain("[y/N]")
    expect(r.out).toContain("Cancelled. Nothing was changed.")
    expect(existsSync(orphan)).toBe(true)
  })

  it("no answer at all (end of input, ^D) is a no", () => {
    const r = onTerminal(env, "\x04", "reconcile", "--prune")
    expect(r.status).toBe(0)
    expect(existsSync(orphan)).toBe(true)
  })

  it("'y' goes ahead", () => {
    const r = onTerminal(env, "y\n", "reconcile", "--prune")
    expect(r.status, r.out).toBe(0)
    expect(existsSync(orphan)).toBe(false)
  })

  it("nothing to do: says so and asks nothing", () => {
    const r = onTerminal(env, "", "reconcile", "--prune")
    expect(r.status).toBe(0)
    expect(r.out).toContain("No changes.")
    expect(r.out).not.toContain("[y/N]")
  })
})
