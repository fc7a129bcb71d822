/** Reading a whole HTTP answer, but never more than a limit: a broken or hostile server cannot make bottle hold more. */
import * as HttpIncomingMessage from "@effect/platform/HttpIncomingMessage"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"

/** What @effect/platform-node's body reader fails with once an answer passes its MaxBodySize. */
const TOO_LARGE = "maxBytes exceeded"

/** What the reader says of an answer past its limit (as the Engine client does). */
const tooLarge = (limit: number) => `the answer is larger than ${limit} bytes`

/**
 * The answer's text (UTF-8), up to `limit` bytes; `bad` makes the caller's
 * error from what went wrong. The platform's own bounded reader
 * (MaxBodySize) does the reading: it stops and destroys the answer once it
 * passes the limit, and joins the text as it comes (linear in the size;
 * its byte reader joins Buffers again at every chunk, quadratic). It reads
 * the socket directly, not through a Stream of the body. Reading an answer
 * also frees its keep-alive socket.
 */
export const readBoundedText = <E>(
  res: HttpClientResponse.HttpClientResponse,
  limit: number,
  bad: (detail: string) => E
): Effect.Effect<string, E> =>
  res.text.pipe(
    // At least 1: the platform reads a limit of 0 as none.
    HttpIncomingMessage.withMaxBodySize(Option.some(Math.max(1, limit))),
    Effect.mapError((e) =>
      bad(e.cause instanceof Error && e.cause.message === TOO_LARGE
        ? tooLarge(limit)
        // The transport's own words (ECONNRESET, aborted), not only the platform's "Decode error".
        : e.cause instanceof Error && !e.message.includes(e.cause.message) ? `${e.message}: ${e.cause.message}` : e.message))
  )
