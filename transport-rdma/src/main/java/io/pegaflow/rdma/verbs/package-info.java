/**
 * The libibverbs binding: {@link io.pegaflow.rdma.verbs.Verbs} (downcalls, including the static-inline data-path verbs
 * through {@code struct ibv_context.ops}) and {@link io.pegaflow.rdma.verbs.VerbsLayout} (struct sizes and offsets,
 * checked against the C headers by a test and against the embedded table at start-up).
 *
 * <p>Threading: stateless and thread-safe; callers give each verbs object (QP, CQ) one owning thread. Internal to
 * transport-rdma: other modules use {@code io.pegaflow.rdma}.
 */
package io.pegaflow.rdma.verbs;
