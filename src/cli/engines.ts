/**
 * The Docker Engine and smolvm clients (and the command executor smolvm is
 * run with), built from the settings for the commands that reach them, when
 * such a command runs (the handlers' modules import this; `--help` never
 * loads it).
 */
import * as NodeCommandExecutor from "@effect/platform-node/NodeCommandExecutor"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as DockerEngine from "../observers/DockerEngine.js"
import * as Smolvm from "../observers/Smolvm.js"
import { SettingsTag } from "./settings.js"

export const withEngines = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.flatMap(SettingsTag, (settings) =>
    Effect.provide(self, Layer.merge(
      DockerEngine.layer({ endpoint: settings.docker, timeout: `${settings.dockerTimeoutSeconds} seconds`, pullTimeout: "30 minutes" }),
      Smolvm.layer({ binary: settings.smolvmBinary, timeout: `${settings.smolvmTimeoutSeconds} seconds` }).pipe(Layer.provide(NodeCommandExecutor.layer))
    )))
