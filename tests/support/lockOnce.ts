/**
 * Takes the host lock once, as `bottle apply` would, and says on stdout how
 * it went: "HELD" once inside (with "hold" it then stays inside until it is
 * killed), or the failure's tag and message, or "DEFECT" and the cause.
 */
import { Cause, Effect, Exit, Option } from "effect"
import { withLock } from "../../src/reconcilers/lock.js"

const [home, mode] = [process.argv[2]!, process.argv[3]]
const inside = Effect.sync(() => console.log("HELD"))
const body = mode === "hold" ? Effect.zipRight(inside, Effect.never) : inside
Effect.runPromiseExit(withLock(home, "bottle apply", 0)(body)).then((exit) => {
  if (Exit.isSuccess(exit)) return
  const failure = Cause.failureOption(exit.cause)
  console.log(Option.isSome(failure) ? `${failure.value._tag}: ${failure.value.message}` : `DEFECT ${Cause.pretty(exit.cause)}`)
})
