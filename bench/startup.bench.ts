/**
 * Cold start of what a user waits for, against `node -e 0` measured in the
 * same run (target ≤ 3× each): `bottle --help`, `bottle get` against an
 * endpoint that refuses at once, and `bottle diff` of a one-bottle spec
 * against an empty engine (a stand-in on a unix socket that answers at once;
 * the time it spent answering is printed and taken off). `--version` is
 * kept for reference: it is answered before the command tree loads.
 *
 * Every bottle run here uses one BOTTLE_HOME that exists, as a user's does,
 * so V8's compiled code is kept between starts (see src/cli/codeCache.ts);
 * the first start, which compiles and writes that cache, is printed apart.
 */
import { spawn } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { startRecordingEngine } from "../tests/support/recordingEngine.js"
import { BIN, median, ratio } from "./support.js"

const run = (args: ReadonlyArray<string>, env: NodeJS.ProcessEnv): Promise<number> =>
  new Promise((resolve, reject) => {
    const t = process.hrtime.bigint()
    const child = spawn(process.execPath, args, { env, stdio: ["ignore", "ignore", "pipe"] })
    let stderr = ""
    child.stderr.on("data", (d) => { stderr += d })
    child.on("error", reject)
    child.on("close", (code) => {
      const ms = Number(process.hrtime.bigint() - t) / 1e6
      // diff ends with 1 when there are changes, get against a refusing endpoint with 2; anything else is a broken bench.
      if (code !== 0 && !(code === 1 && args.includes("diff")) && !(code === 2 && stderr.includes("cannot reach"))) reject(new Error(`${args.join(" ")} exited ${code}: ${stderr}`))
      else resolve(ms)
    })
  })

/** The time covered by at least one of `spans` (an engine answering several requests at once counts once). */
const covered = (spans: ReadonlyArray<readonly [number, number]>): number => {
  let total = 0
  let end = -Infinity
  for (const [a, b] of [...spans].sort((x, y) => x[0] - y[0])) {
    if (b <= end) continue
    total += b - Math.max(a, end)
    end = b
  }
  return total
}

export const benchStartup = async () => {
  const runs = Number(process.env["BENCH_STARTUP_RUNS"] ?? 15)
  const dir = mkdtempSync(join(tmpdir(), "bottle-bench-startup-"))
  const engine = await startRecordingEngine(join(dir, "engine.sock"))
  try {
    const spec = join(dir, "one.yaml")
    writeFileSync(spec, "apiVersion: bottle/v1\nkind: Bottle\nmetadata:\n  name: one\nspec:\n  backend: docker\n  image: busybox:latest\n  egress:\n    allow: [api.anthropic.com]\n")
    const base = { ...process.env, NO_COLOR: "1", BOTTLE_HOME: dir, BOTTLE_SMOLVM: "/nonexistent/smolvm", BOTTLE_PREFIX: "bench-startup" }
    const refusing = { ...base, DOCKER_HOST: `unix://${join(dir, "nobody-listens.sock")}` }
    const empty = { ...base, DOCKER_HOST: `unix://${engine.socketPath}` }
    const first = await run([BIN, "--help"], base)
    const cases = [
      { name: "--version", args: [BIN, "--version"], env: base },
      { name: "--help", args: [BIN, "--help"], env: base },
      { name: "get (endpoint refuses)", args: [BIN, "get"], env: refusing },
      { name: "diff (1 bottle, empty engine)", args: [BIN, "diff", "-f", spec], env: empty }
    ]
    const node: Array<number> = []
    const times = cases.map(() => [] as Array<number>)
    const engineMs: Array<number> = []
    for (let i = 0; i < runs; i++) {
      node.push(await run(["-e", "0"], base))
      for (const [k, c] of cases.entries()) {
        const before = engine.spans.length
        const ms = await run(c.args, c.env)
        const spent = covered(engine.spans.slice(before))
        if (c.name.startsWith("diff")) engineMs.push(spent)
        times[k]!.push(ms - spent)
      }
    }
    const n = median(node)
    console.log(`startup (median of ${runs}): node -e 0 ${n.toFixed(1)} ms; the first start of this build (no compile cache yet) ${first.toFixed(1)} ms (${ratio(first, n)}×)`)
    for (const [k, c] of cases.entries()) {
      const t = median(times[k]!)
      const target = c.name === "--version" ? "" : `   (target ≤ 3.00) ${t / n <= 3 ? "MET" : "NOT MET"}`
      const extra = c.name.startsWith("diff") ? `, after the engine's own ${median(engineMs).toFixed(1)} ms` : ""
      console.log(`  bottle ${c.name}: ${t.toFixed(1)} ms${extra}   ratio ${ratio(t, n)}${target}`)
    }
  } finally {
    await engine.close()
    rmSync(dir, { recursive: true, force: true })
  }
}
