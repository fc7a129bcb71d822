import * as Context from "effect/Context"
import type { Settings } from "../resources/settings.js"

/** The checked environment, read once at start. */
export class SettingsTag extends Context.Tag("bottle/Settings")<SettingsTag, Settings>() {}
