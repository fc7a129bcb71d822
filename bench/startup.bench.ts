/** `bottle --version` wall time against `node -e 0`, measured in the same run. Target: ≤ 3×. */
import { execFileSync } from "node:child_process"
import { BIN, median, ratio, time } from "./support.js"

export const benchStartup = () => {
  const runs = Number(process.env["BENCH_STARTUP_RUNS"] ?? 21)
  const node: Array<number> = []
  const ours: Array<number> = []
  for (let i = 0; i < runs; i++) {
    node.push(time(() => execFileSync(process.execPath, ["-e", "0"])))
    ours.push(time(() => execFileSync(process.execPath, [BIN, "--version"])))
  }
  const [n, o] = [median(node), median(ours)]
  console.log(`startup (median of ${runs}): node -e 0 ${n.toFixed(1)} ms, bottle --version ${o.toFixed(1)} ms`)
  console.log(`  ratio: ${ratio(o, n)}   (target ≤ 3.00) ${o / n <= 3 ? "MET" : "NOT MET"}`)
  const help: Array<number> = []
  for (let i = 0; i < 5; i++) help.push(time(() => execFileSync(process.execPath, [BIN, "--help"])))
  console.log(`  for reference, bottle --help (loads the command tree): ${median(help).toFixed(1)} ms`)
}
