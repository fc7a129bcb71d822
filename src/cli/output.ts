/** Where the CLI writes, and how: colour only for a terminal without NO_COLOR. */
import { colourStyle, plainStyle, type Style } from "../reconcilers/render.js"

/** Colour for text bound for `stream`: a terminal, and no NO_COLOR (any non-empty value). */
export const useColour = (stream: NodeJS.WriteStream = process.stdout): boolean => Boolean(stream.isTTY) && !process.env["NO_COLOR"]
export const style = (stream: NodeJS.WriteStream = process.stdout): Style => (useColour(stream) ? colourStyle : plainStyle)
export const out = (text: string) => void process.stdout.write(text.endsWith("\n") ? text : `${text}\n`)
export const err = (text: string) => void process.stderr.write(text.endsWith("\n") ? text : `${text}\n`)
export const json = (value: unknown) => out(JSON.stringify(value, null, 2))
