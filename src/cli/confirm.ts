/** The one y/N question before anything is deleted. */
import { createInterface } from "node:readline/promises"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

export interface ConfirmShape {
  /** False when there is no terminal to ask on. */
  readonly interactive: boolean
  /** True only for an explicit yes; anything else, or no answer, is no. */
  readonly ask: (question: string) => Effect.Effect<boolean>
}

export class Confirm extends Context.Tag("bottle/Confirm")<Confirm, ConfirmShape>() {}

export const layer = Layer.sync(Confirm, () => ({
  interactive: Boolean(process.stdin.isTTY),
  ask: (question) =>
    Effect.async<boolean>((resume) => {
      const rl = createInterface({ input: process.stdin, output: process.stderr })
      let answered = false
      // End of input is a "no".
      rl.on("close", () => { if (!answered) { answered = true; resume(Effect.succeed(false)) } })
      rl.question(question).then(
        (answer) => { answered = true; rl.close(); resume(Effect.succeed(/^(y|yes)$/i.test(answer.trim()))) },
        () => { if (!answered) { answered = true; resume(Effect.succeed(false)) } }
      )
      return Effect.sync(() => rl.close())
    })
}))
