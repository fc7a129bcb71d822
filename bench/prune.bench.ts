/**
 * Prune of 50 leftover bottles (agent containers) by `bottle reconcile
 * --prune --yes`, against a sequential `docker rm -f` loop and one `docker
 * rm -f` of all of them, measured in the same run. Target: ≤ 1.1× the
 * all-at-once removal.
 */
import { execFileSync } from "node:child_process"
import { bottle, docker, env, ensureTestImages, median, ratio, runContainers, scrub, time } from "./support.js"

const N = 50
const ROUNDS = Number(process.env["BENCH_ROUNDS"] ?? 3)

export const benchPrune = () => {
  ensureTestImages()
  const prefix = `bprune${process.pid.toString(36)}`
  const names = Array.from({ length: N }, (_, i) => `${prefix}-b${i}-agent-1`)
  const labels = (n: string) => ({ "com.docker.compose.project": n.replace(/-agent-1$/, ""), "com.docker.compose.service": "agent" })
  const loop: Array<number> = []
  const all: Array<number> = []
  const ours: Array<number> = []
  try {
    for (let r = 0; r < ROUNDS; r++) {
      runContainers(names, labels)
      loop.push(time(() => { for (const n of names) execFileSync("docker", ["rm", "-f", n], { stdio: "ignore" }) }))
      runContainers(names, labels)
      all.push(time(() => execFileSync("docker", ["rm", "-f", ...names], { stdio: "ignore" })))
      runContainers(names, labels)
      const e = env(prefix)
      ours.push(time(() => bottle(e, "reconcile", "--prune", "--yes")))
      if (docker("ps", "-aq", "--filter", `name=${prefix}-`) !== "") throw new Error("bottle left containers behind")
    }
  } finally {
    scrub(prefix)
  }
  const [l, a, o] = [median(loop), median(all), median(ours)]
  console.log(`prune of ${N} leftover bottles (median of ${ROUNDS}):`)
  console.log(`  sequential docker rm -f loop: ${l.toFixed(0)} ms`)
  console.log(`  one docker rm -f of all:      ${a.toFixed(0)} ms`)
  console.log(`  bottle reconcile --prune:     ${o.toFixed(0)} ms`)
  console.log(`  ratio bottle / loop:    ${ratio(o, l)}`)
  console.log(`  ratio bottle / one-rm:  ${ratio(o, a)}   (target ≤ 1.10) ${o / a <= 1.1 ? "MET" : "NOT MET"}`)
}
