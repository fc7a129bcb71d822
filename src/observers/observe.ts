/** Takes one snapshot of the live world from every observer at once. */
import { Effect } from "effect"
import type { Observed } from "../resources/observed.js"
import type { Settings } from "../resources/settings.js"
import { dockerSource } from "./dockerObserver.js"
import { smolvmSource } from "./Smolvm.js"
import { stateSource } from "./stateObserver.js"

export const observe = (settings: Settings) =>
  Effect.all(
    {
      docker: dockerSource(settings.names.prefix),
      smolvm: smolvmSource,
      state: stateSource(settings.stateRoot)
    },
    { concurrency: "unbounded" }
  ).pipe(Effect.map((o): Observed => o))
