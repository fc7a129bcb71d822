/** The JSON Schema editors use for spec files, generated from the same effect/Schema definitions. Pure. */
import * as JSONSchema from "effect/JSONSchema"
import { BottleDocument } from "./spec.js"

export const bottleJsonSchema = (): string => `${JSON.stringify(JSONSchema.make(BottleDocument), null, 2)}\n`
