/**
 * The prefill/decode proxy ({@code ./pegaflow proxy}): an OpenAI-compatible HTTP front that runs each completion as
 * two legs, a prefill engine ({@code max_tokens=1}, non-streaming, {@code kv_transfer_params} asking for remote
 * decode) and then a decode engine (the returned {@code kv_transfer_params} copied in, its answer streamed through).
 *
 * <p>Threading: everything runs on pekko-http's and pekko-stream's dispatchers as asynchronous stages; no handler
 * blocks. {@link io.pegaflow.proxy.EnginePool} is thread-safe (an atomic counter); {@link
 * io.pegaflow.proxy.ProxyMetrics} writes Kamon instruments, which are thread-safe. {@link io.pegaflow.proxy.ProxyCommand}
 * alone blocks, on the CLI's main thread, until the actor system terminates.
 */
package io.pegaflow.proxy;
