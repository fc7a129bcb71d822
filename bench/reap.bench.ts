/**
 * Reaping a mixed host (20 compose projects of 3 containers and a network
 * each, 20 stray containers, 10 stray networks, 30 state dirs) with one
 * `bottle reconcile --prune --yes`, against the older tool's way: one
 * removal per item, sequentially (per project: `docker rm -f` of its
 * containers then `docker network rm`, as `compose down` does; per stray:
 * `docker rm -f` / `docker network rm`; per state dir: `rm -rf`).
 *
 * The target is against the Engine's own floor, measured in the same run:
 * everything at once (one `docker rm -f` of all the containers, then one
 * `docker network rm` of all the networks, one `rm -rf`); bottle ≤ 1.0× of
 * it. Docker 20.10 does network work (a container's endpoint, a network)
 * largely one item at a time, so no client gets far under that. Where the
 * time goes is printed per kind of action (from bottle's -o json report).
 */
import { execFileSync } from "node:child_process"
import { mkdirSync, writeFileSync } from "node:fs"
import { bottle, docker, env, ensureTestImages, median, ratio, runContainers, scrub, time } from "./support.js"

const ROUNDS = Number(process.env["BENCH_ROUNDS"] ?? 2)

const makeHost = (prefix: string, home: string) => {
  const projects = Array.from({ length: 20 }, (_, i) => `${prefix}-p${i}`)
  for (const p of projects) docker("network", "create", "--label", `com.docker.compose.project=${p}`, `${p}_default`)
  const members = projects.flatMap((p) => ["agent", "egress", "git"].map((s) => ({ p, s, name: `${p}-${s}-1` })))
  runContainers(members.map((m) => m.name), (n) => {
    const m = members.find((x) => x.name === n)!
    return { "com.docker.compose.project": m.p, "com.docker.compose.service": m.s }
  })
  const strays = Array.from({ length: 20 }, (_, i) => `${prefix}-stray${i}`)
  runContainers(strays)
  const nets = Array.from({ length: 10 }, (_, i) => `${prefix}-net${i}`)
  for (const n of nets) docker("network", "create", n)
  const dirs = Array.from({ length: 30 }, (_, i) => `${home}/state/old${i}`)
  // The older tool's state dirs: its metadata names a compose project of this prefix.
  for (const [i, d] of dirs.entries()) { mkdirSync(`${d}/workspace`, { recursive: true }); writeFileSync(`${d}/metadata.json`, JSON.stringify({ compose_project: `${prefix}-old${i}`, identity: `old${i}` })) }
  return { projects, members, strays, nets, dirs }
}

export const benchReap = () => {
  ensureTestImages()
  const prefix = `breap${process.pid.toString(36)}`
  const old: Array<number> = []
  const atOnce: Array<number> = []
  const ours: Array<number> = []
  const kinds: Array<ReadonlyArray<{ action: { type: string }; ms: number }>> = []
  try {
    for (let r = 0; r < ROUNDS; r++) {
      const e1 = env(prefix)
      const h = makeHost(prefix, e1["BOTTLE_HOME"]!)
      old.push(time(() => {
        for (const p of h.projects) {
          execFileSync("docker", ["rm", "-f", ...h.members.filter((m) => m.p === p).map((m) => m.name)], { stdio: "ignore" })
          execFileSync("docker", ["network", "rm", `${p}_default`], { stdio: "ignore" })
        }
        for (const s of h.strays) execFileSync("docker", ["rm", "-f", s], { stdio: "ignore" })
        for (const n of h.nets) execFileSync("docker", ["network", "rm", n], { stdio: "ignore" })
        for (const d of h.dirs) execFileSync("rm", ["-rf", d])
      }))
      const e3 = env(prefix)
      const h3 = makeHost(prefix, e3["BOTTLE_HOME"]!)
      atOnce.push(time(() => {
        execFileSync("docker", ["rm", "-f", ...h3.members.map((m) => m.name), ...h3.strays], { stdio: "ignore" })
        execFileSync("docker", ["network", "rm", ...h3.projects.map((p) => `${p}_default`), ...h3.nets], { stdio: "ignore" })
        execFileSync("rm", ["-rf", ...h3.dirs])
      }))
      const e2 = env(prefix)
      makeHost(prefix, e2["BOTTLE_HOME"]!)
      let report: ReadonlyArray<{ action: { type: string }; ms: number }> = []
      ours.push(time(() => { report = JSON.parse(bottle(e2, "reconcile", "--prune", "--yes", "-o", "json")).report }))
      kinds.push(report)
      if (docker("ps", "-aq", "--filter", `name=${prefix}-`) !== "") throw new Error("bottle left containers behind")
    }
  } finally {
    scrub(prefix)
  }
  const [o, a, b] = [median(old), median(atOnce), median(ours)]
  console.log(`reap of a mixed host (60 project containers, 20 projects, 20 strays, 10 networks, 30 state dirs; median of ${ROUNDS}):`)
  console.log(`  older tool's way (sequential): ${o.toFixed(0)} ms`)
  console.log(`  everything at once (2 calls):  ${a.toFixed(0)} ms`)
  console.log(`  bottle reconcile --prune:      ${b.toFixed(0)} ms`)
  console.log(`  bottle / at-once: ${ratio(b, a)}   (target ≤ 1.00) ${b / a <= 1 ? "MET" : "NOT MET"}`)
  console.log(`  bottle's speed-up over the older way: ${ratio(o, b)}×`)
  const per = new Map<string, { n: number; total: number; max: number }>()
  for (const r of kinds.at(-1) ?? []) {
    const k = per.get(r.action.type) ?? { n: 0, total: 0, max: 0 }
    per.set(r.action.type, { n: k.n + 1, total: k.total + r.ms, max: Math.max(k.max, r.ms) })
  }
  console.log("  where bottle's time goes (last round; actions overlap, so totals exceed the wall time):")
  for (const [k, v] of [...per.entries()].sort((x, y) => y[1].total - x[1].total)) console.log(`    ${k.padEnd(16)} ${String(v.n).padStart(3)} actions, ${v.total.toFixed(0).padStart(6)} ms in all, longest ${v.max.toFixed(0)} ms`)
}
