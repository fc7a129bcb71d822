/**
 * A plan is the same whoever runs it: its order does not follow the locale
 * in LANG. (localeCompare does: Estonian sorts 'z' before 't'.) Runs the
 * bundle, which `npm test` builds first, against a stand-in engine.
 */
import { execFile, spawnSync } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { BIN } from "./support/docker.js"
import { startRecordingEngine, type RecordingEngine } from "./support/recordingEngine.js"

const dir = mkdtempSync(join(tmpdir(), "bottle-locale-"))
let engine: RecordingEngine
beforeAll(async () => { engine = await startRecordingEngine(join(dir, "engine.sock")) })
afterAll(async () => {
  await engine.close()
  rmSync(dir, { recursive: true, force: true })
})

const spec = ["t-one", "z-one", "s-one"]
  .map((n) => `apiVersion: bottle/v1\nkind: Bottle\nmetadata:\n  name: ${n}\nspec:\n  backend: docker\n  image: busybox:latest\n  egress:\n    allow: [api.anthropic.com]\n`)
  .join("---\n")

/** `bottle diff -o json` of the spec under a locale; async, since the stand-in engine answers from this process. */
const diffIn = (locale: string) =>
  new Promise<string>((resolve, reject) => {
    const file = join(dir, "three.yaml")
    writeFileSync(file, spec)
    execFile(process.execPath, [BIN, "diff", "-f", file, "-o", "json"], {
      env: { ...process.env, LANG: locale, LC_ALL: locale, NO_COLOR: "1", BOTTLE_HOME: join(dir, "home"), BOTTLE_PREFIX: "locale", BOTTLE_SMOLVM: "/nonexistent/smolvm", DOCKER_HOST: `unix://${engine.socketPath}` },
      encoding: "utf8",
      timeout: 30_000
    }, (error, stdout, stderr) => {
      // diff ends with 1: changes pending.
      if (error?.code !== 1) reject(new Error(`diff under ${locale}: ${error?.code ?? 0}: ${stderr}`))
      else resolve(stdout)
    })
  })

describe("the order of a plan", () => {
  it("is the same in the C locale and in Estonian, names in code-unit order", async () => {
    // The node running the tests sorts by Estonian rules under that locale: else this test proves nothing.
    expect(spawnSync(process.execPath, ["-e", "process.stdout.write(['t','z'].sort((a,b)=>a.localeCompare(b)).join())"], { env: { ...process.env, LANG: "et_EE.UTF-8", LC_ALL: "et_EE.UTF-8" }, encoding: "utf8" }).stdout).toBe("z,t")
    const c = await diffIn("C.UTF-8")
    expect(await diffIn("et_EE.UTF-8")).toBe(c)
    const order = ["s-one", "t-one", "z-one"].map((n) => c.indexOf(`"locale-${n}-agent-1"`))
    expect(order.every((at) => at >= 0)).toBe(true)
    expect([...order].sort((a, b) => a - b)).toEqual(order)
  })
})
