/** Where the CLI writes, and how: colour only for a terminal without NO_COLOR. */
import { colourStyle, plainStyle, type Style } from "../reconcilers/render.js"

export const useColour = (): boolean => Boolean(process.stdout.isTTY) && !process.env["NO_COLOR"]
export const style = (): Style => (useColour() ? colourStyle : plainStyle)
export const out = (text: string) => void process.stdout.write(text.endsWith("\n") ? text : `${text}\n`)
export const err = (text: string) => void process.stderr.write(text.endsWith("\n") ? text : `${text}\n`)
export const json = (value: unknown) => out(JSON.stringify(value, null, 2))
