/**
 * Raw FFM bindings: downcall handles named for their C symbols ({@code libcuda.so.1}'s {@code _v2} entry points), the constants and struct layouts of {@code cuda.h}, and the {@code CUresult} name table.
 * Nothing here checks results; {@code io.pegaflow.gpu.cuda} does. Stateless and thread-safe.
 */
package io.pegaflow.gpu.cuda.ffi;
