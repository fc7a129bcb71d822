/** Takes one snapshot of the live world from every observer at once. */
import * as Effect from "effect/Effect"
import type { Observed } from "../resources/observed.js"
import type { Settings } from "../resources/settings.js"
import { dockerSource } from "./dockerObserver.js"
import { smolvmSource } from "./Smolvm.js"
import { stateSource } from "./stateObserver.js"

/** `inspect`: also read what fences bottle's containers (plans need it; listings do not). */
export const observe = (settings: Settings, opts: { readonly inspect: boolean } = { inspect: true }) =>
  Effect.all(
    {
      docker: dockerSource(settings.names.prefix, opts),
      smolvm: smolvmSource,
      state: stateSource(settings.stateRoot)
    },
    { concurrency: "unbounded" }
  ).pipe(Effect.map((o): Observed => o))
