/**
 * CUDA driver API through FFM and a host-memory stand-in with the same copy-engine interface.
 *
 * <p>Filled in by issue [3 of 7]; until then the node runs on the host path only.
 */
package io.pegaflow.gpu;
