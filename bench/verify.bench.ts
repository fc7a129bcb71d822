/**
 * Proving fences. Two figures, each against a baseline from the same run:
 * - `bottle verify` of 10 bottles against `bottle verify` of 1 (the probes
 *   run at once; target ≤ 2×);
 * - the time `apply` of one bottle spends verifying it (the VerifyBottle
 *   action, from `apply -o json`), against the floor of any probe: one
 *   `docker run --rm` of the probe image doing nothing (target ≤ 1.5 s
 *   absolute, the ratio shown for where it goes).
 */
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { AGENT_IMAGE, bottle, docker, EGRESS_IMAGE, ensureTestImages, env, median, ratio, scrub, time } from "./support.js"

const spec = (names: ReadonlyArray<string>) =>
  names.map((n) => `apiVersion: bottle/v1\nkind: Bottle\nmetadata: { name: ${n} }\nspec:\n  image: ${AGENT_IMAGE}\n  egress: { allow: [api.anthropic.com] }\n  resources: { memory: 64m, pids: 64 }\n`).join("---\n")

export const benchVerify = () => {
  ensureTestImages()
  const prefix = `bv${process.pid.toString(36)}`
  const e = { ...env(prefix), BOTTLE_PROBE_IMAGE: EGRESS_IMAGE }
  const dir = mkdtempSync(join(tmpdir(), "bottle-bench-verify-"))
  try {
    // apply's own verification of one bottle, from its report.
    const one = join(dir, "one.yaml")
    writeFileSync(one, spec(["v0"]))
    const report = JSON.parse(bottle(e, "apply", "-f", one, "-o", "json")).report as Array<{ action: { type: string }; ms: number }>
    const verifyMs = report.find((r) => r.action.type === "VerifyBottle")?.ms ?? NaN
    const floor = median([0, 1, 2].map(() => time(() => docker("run", "--rm", "--network", "none", EGRESS_IMAGE, "true"))))
    console.log(`apply of one bottle spends ${verifyMs} ms verifying it; one bare probe container (docker run --rm … true) takes ${floor.toFixed(0)} ms`)
    console.log(`  ratio to the bare container: ${ratio(verifyMs, floor)}   (target: ≤ 1500 ms) ${verifyMs <= 1500 ? "MET" : "NOT MET"}`)

    // verify of 10 against verify of 1.
    const ten = join(dir, "ten.yaml")
    writeFileSync(ten, spec(Array.from({ length: 10 }, (_, i) => `v${i}`)))
    bottle(e, "apply", "-f", ten)
    const single = median([0, 1, 2].map(() => time(() => bottle(e, "verify", "v0"))))
    const all = median([0, 1, 2].map(() => time(() => bottle(e, "verify"))))
    console.log(`bottle verify: 1 bottle ${single.toFixed(0)} ms, 10 bottles ${all.toFixed(0)} ms`)
    console.log(`  ratio: ${ratio(all, single)}   (target ≤ 2.00) ${all / single <= 2 ? "MET" : "NOT MET"}`)
  } finally {
    bottle(e, "reconcile", "--prune", "--yes")
    scrub(prefix)
  }
}
