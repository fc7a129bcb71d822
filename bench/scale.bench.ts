/**
 * A hundred bottles on one engine. Each docker bottle takes two networks;
 * bottle gives them subnets from its own pool (BOTTLE_SUBNETS), so the
 * Engine's default address pools (about 30 networks) are no limit. Prints
 * the time of one `apply` and of a no-op `diff` for 25, 50 and 100 bottles,
 * and the cost per bottle, against the 25-bottle run as the baseline (the
 * cost per bottle should stay flat).
 */
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { AGENT_IMAGE, bottle, ensureTestImages, env, ratio, scrub, time } from "./support.js"

const spec = (names: ReadonlyArray<string>) =>
  names.map((n) => `apiVersion: bottle/v1\nkind: Bottle\nmetadata: { name: ${n} }\nspec:\n  image: ${AGENT_IMAGE}\n  egress: { allow: [api.anthropic.com] }\n  resources: { memory: 64m, pids: 64 }\n`).join("---\n")

export const benchScale = () => {
  ensureTestImages()
  const dir = mkdtempSync(join(tmpdir(), "bottle-bench-scale-"))
  const sizes = (process.env["BENCH_SCALE_SIZES"] ?? "25,50,100").split(",").map(Number)
  let base: { apply: number; diff: number } | undefined
  for (const n of sizes) {
    const prefix = `bsc${process.pid.toString(36)}n${n}`
    const e = { ...env(prefix), BOTTLE_LOCK_WAIT: "3600" }
    const file = join(dir, `s${n}.yaml`)
    writeFileSync(file, spec(Array.from({ length: n }, (_, i) => `s${i}`)))
    try {
      const apply = time(() => bottle(e, "apply", "-f", file, "--concurrency", "16"))
      const diff = time(() => bottle(e, "diff", "-f", file))
      const per = { apply: apply / n, diff: diff / n }
      base ??= per
      console.log(`${n} bottles: apply ${(apply / 1000).toFixed(1)} s (${per.apply.toFixed(0)} ms each), no-op diff ${diff.toFixed(0)} ms (${per.diff.toFixed(1)} ms each)`)
      console.log(`  per bottle against 25: apply ${ratio(per.apply, base.apply)}, diff ${ratio(per.diff, base.diff)}`)
    } finally {
      bottle({ ...e }, "reconcile", "--prune", "--yes")
      scrub(prefix)
    }
  }
}
