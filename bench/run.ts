/** Runs every benchmark; each prints its ratio against a baseline measured in the same run. */
import { benchPrune } from "./prune.bench.js"
import { benchRequests } from "./requests.bench.js"
import { benchStartup } from "./startup.bench.js"
import { benchReap } from "./reap.bench.js"
import { benchVerify } from "./verify.bench.js"
import { benchApply } from "./apply.bench.js"
import { benchScale } from "./scale.bench.js"

const only = process.argv[2]
const all: Record<string, () => unknown> = { startup: benchStartup, requests: benchRequests, prune: benchPrune, reap: benchReap, verify: benchVerify, apply: benchApply, scale: benchScale }
for (const [name, run] of Object.entries(all)) {
  if (only !== undefined && only !== name) continue
  console.log(`\n== ${name} ==`)
  await run()
}
