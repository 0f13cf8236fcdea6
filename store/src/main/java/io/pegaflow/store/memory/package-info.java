/**
 * Host memory for the block pool: anonymous mappings with hugetlb or transparent huge pages, populated in parallel at
 * start-up, through a small FFM binding to libc ({@code mmap}, {@code madvise}, {@code munmap}); parts of it can be
 * bound to NUMA nodes before populating ({@link io.pegaflow.store.memory.Numa}: {@code mbind} and {@code
 * get_mempolicy} through {@code syscall}, stateless). Needs
 * {@code --enable-native-access} for the module or class path that holds it.
 *
 * <p>Threading: {@link io.pegaflow.store.memory.HostMemory} is immutable once allocated and thread-safe; allocation
 * runs its own short-lived populate threads ({@code pegaflow-host-populate-N}) and returns when they are done. Close
 * it only after every user of the memory has stopped.
 */
package io.pegaflow.store.memory;
