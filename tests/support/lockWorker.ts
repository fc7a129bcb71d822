/**
 * A process that takes the host lock `rounds` times and, inside, claims a
 * marker file with an exclusive create: two holders at once show up as a
 * failed claim, reported on stdout as "OVERLAP".
 */
import { Effect } from "effect"
import { closeSync, openSync, unlinkSync } from "node:fs"
import { withLock } from "../../src/reconcilers/lock.js"

const [home, rounds] = [process.argv[2]!, Number(process.argv[3] ?? 10)]
const inside = `${home}/inside`
const critical = Effect.gen(function* () {
  try { closeSync(openSync(inside, "wx")) } catch { console.log("OVERLAP"); return }
  yield* Effect.sleep("3 millis")
  unlinkSync(inside)
})
const program = Effect.forEach(Array.from({ length: rounds }), () => withLock(home, "worker", 60)(critical), { discard: true })
Effect.runPromise(program).then(() => console.log("DONE"), (e) => { console.log(`ERROR ${e}`); process.exitCode = 1 })
