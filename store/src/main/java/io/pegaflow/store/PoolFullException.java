package io.pegaflow.store;

/** The pool cannot hold a save's new blocks even after evicting every unpinned block of their size. */
public final class PoolFullException extends RuntimeException {
    public PoolFullException(String message) {
        super(message);
    }
}
