package io.pegaflow.rdma.verbs;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;
import java.util.Optional;

/**
 * libibverbs.so.1 through FFM: one downcall handle per exported function, resolved once, with {@code errno}
 * captured where the library reports failures through it (a NULL return). The data-path verbs
 * ({@code ibv_post_send}, {@code ibv_post_recv}, {@code ibv_poll_cq}) are static inline in the headers and not
 * exported: {@link #postSend}, {@link #postRecv} and {@link #pollCq} read the provider's function pointer from
 * {@code struct ibv_context.ops} (offsets in {@link VerbsLayout}) and call it through one address-taking handle.
 *
 * <p>{@link #load()} never throws: a machine without the library gets an empty result and a reason. All methods are
 * thread-safe as far as libibverbs is (verbs on one object from several threads need the caller's ordering; the
 * transport gives each queue pair and completion queue one owning thread). Methods that need scratch memory take a
 * caller's segment; none allocates on the data path.
 */
public final class Verbs {

    public static final String LIBRARY = "libibverbs.so.1";

    // enum ibv_qp_state
    public static final int QPS_RESET = 0;
    public static final int QPS_INIT = 1;
    public static final int QPS_RTR = 2;
    public static final int QPS_RTS = 3;
    public static final int QPS_ERR = 6;
    // enum ibv_qp_type
    public static final int QPT_RC = 2;
    // enum ibv_access_flags
    public static final int ACCESS_LOCAL_WRITE = 1;
    public static final int ACCESS_REMOTE_WRITE = 1 << 1;
    public static final int ACCESS_REMOTE_READ = 1 << 2;
    // enum ibv_qp_attr_mask
    public static final int QP_STATE = 1;
    public static final int QP_ACCESS_FLAGS = 1 << 3;
    public static final int QP_PKEY_INDEX = 1 << 4;
    public static final int QP_PORT = 1 << 5;
    public static final int QP_AV = 1 << 7;
    public static final int QP_PATH_MTU = 1 << 8;
    public static final int QP_TIMEOUT = 1 << 9;
    public static final int QP_RETRY_CNT = 1 << 10;
    public static final int QP_RNR_RETRY = 1 << 11;
    public static final int QP_RQ_PSN = 1 << 12;
    public static final int QP_MAX_QP_RD_ATOMIC = 1 << 13;
    public static final int QP_MIN_RNR_TIMER = 1 << 15;
    public static final int QP_SQ_PSN = 1 << 16;
    public static final int QP_MAX_DEST_RD_ATOMIC = 1 << 17;
    public static final int QP_DEST_QPN = 1 << 20;
    // enum ibv_wr_opcode
    public static final int WR_RDMA_WRITE = 0;
    public static final int WR_RDMA_READ = 4;
    // enum ibv_send_flags
    public static final int SEND_SIGNALED = 1 << 1;
    // enum ibv_port_state
    public static final int PORT_ACTIVE = 4;
    // link layers
    public static final int LINK_LAYER_UNSPECIFIED = 0;
    public static final int LINK_LAYER_INFINIBAND = 1;
    public static final int LINK_LAYER_ETHERNET = 2;
    // enum ibv_wc_status (the ones the transport tells apart)
    public static final int WC_SUCCESS = 0;
    public static final int WC_WR_FLUSH_ERR = 5;
    public static final int WC_REM_ACCESS_ERR = 10;
    public static final int WC_RETRY_EXC_ERR = 12;
    // errno
    public static final int ENOSYS = 38;
    public static final int ENODATA = 61;
    public static final int ENOMEM = 12;

    private static final Linker LINKER = Linker.nativeLinker();
    private static final Linker.Option ERRNO = Linker.Option.captureCallState("errno");
    private static final StructLayout CAPTURE = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO_HANDLE = CAPTURE.varHandle(MemoryLayout.PathElement.groupElement("errno"));

    // Through a function pointer: (fn, args...). critical: no Java heap access, no upcall, short.
    private static final MethodHandle POLL_CQ = LINKER.downcallHandle(
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, ADDRESS), Linker.Option.critical(false));
    private static final MethodHandle POST_WR = LINKER.downcallHandle(
            FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS), Linker.Option.critical(false));

    private static final MethodHandle STRERROR = LINKER.downcallHandle(
            LINKER.defaultLookup().find("strerror").orElseThrow(), FunctionDescriptor.of(ADDRESS, JAVA_INT));
    private static final MethodHandle GETRLIMIT = LINKER.downcallHandle(
            LINKER.defaultLookup().find("getrlimit").orElseThrow(), FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS));

    private final MethodHandle getDeviceList;
    private final MethodHandle freeDeviceList;
    private final MethodHandle getDeviceName;
    private final MethodHandle openDevice;
    private final MethodHandle closeDevice;
    private final MethodHandle queryDevice;
    private final MethodHandle queryPort;
    private final MethodHandle queryGidEx;
    private final MethodHandle queryGid;
    private final MethodHandle allocPd;
    private final MethodHandle deallocPd;
    private final MethodHandle regMr;
    private final MethodHandle deregMr;
    private final MethodHandle createCq;
    private final MethodHandle destroyCq;
    private final MethodHandle createQp;
    private final MethodHandle modifyQp;
    private final MethodHandle destroyQp;
    private final MethodHandle wcStatusStr;

    private Verbs(SymbolLookup lib) {
        getDeviceList = handle(lib, "ibv_get_device_list", FunctionDescriptor.of(ADDRESS, ADDRESS), true);
        freeDeviceList = handle(lib, "ibv_free_device_list", FunctionDescriptor.ofVoid(ADDRESS), false);
        getDeviceName = handle(lib, "ibv_get_device_name", FunctionDescriptor.of(ADDRESS, ADDRESS), false);
        openDevice = handle(lib, "ibv_open_device", FunctionDescriptor.of(ADDRESS, ADDRESS), true);
        closeDevice = handle(lib, "ibv_close_device", FunctionDescriptor.of(JAVA_INT, ADDRESS), false);
        queryDevice = handle(lib, "ibv_query_device", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS), false);
        queryPort = handle(lib, "ibv_query_port", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_BYTE, ADDRESS), false);
        queryGidEx = handle(
                lib,
                "_ibv_query_gid_ex",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT, JAVA_LONG),
                false);
        queryGid = handle(
                lib, "ibv_query_gid", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_BYTE, JAVA_INT, ADDRESS), false);
        allocPd = handle(lib, "ibv_alloc_pd", FunctionDescriptor.of(ADDRESS, ADDRESS), true);
        deallocPd = handle(lib, "ibv_dealloc_pd", FunctionDescriptor.of(JAVA_INT, ADDRESS), false);
        regMr = handle(lib, "ibv_reg_mr", FunctionDescriptor.of(ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT), true);
        deregMr = handle(lib, "ibv_dereg_mr", FunctionDescriptor.of(JAVA_INT, ADDRESS), false);
        createCq = handle(
                lib,
                "ibv_create_cq",
                FunctionDescriptor.of(ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS, JAVA_INT),
                true);
        destroyCq = handle(lib, "ibv_destroy_cq", FunctionDescriptor.of(JAVA_INT, ADDRESS), false);
        createQp = handle(lib, "ibv_create_qp", FunctionDescriptor.of(ADDRESS, ADDRESS, ADDRESS), true);
        modifyQp = handle(lib, "ibv_modify_qp", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_INT), false);
        destroyQp = handle(lib, "ibv_destroy_qp", FunctionDescriptor.of(JAVA_INT, ADDRESS), false);
        wcStatusStr = handle(lib, "ibv_wc_status_str", FunctionDescriptor.of(ADDRESS, JAVA_INT), false);
    }

    /** The library, or why it cannot be loaded. */
    public record Loaded(Optional<Verbs> verbs, String reason) {}

    private static volatile Loaded loaded;

    /** Loads {@code libibverbs.so.1} once; never throws (a missing library is a reason, not an exception). */
    public static Loaded load() {
        Loaded l = loaded;
        if (l == null) {
            synchronized (Verbs.class) {
                l = loaded;
                if (l == null) {
                    try {
                        l = new Loaded(Optional.of(new Verbs(SymbolLookup.libraryLookup(LIBRARY, Arena.global()))), "");
                    } catch (IllegalArgumentException | UnsatisfiedLinkError e) {
                        l = new Loaded(
                                Optional.empty(),
                                LIBRARY + " cannot be loaded (" + e.getMessage()
                                        + "): install it (Debian: apt-get install libibverbs1 ibverbs-providers)");
                    }
                    loaded = l;
                }
            }
        }
        return l;
    }

    private static MethodHandle handle(SymbolLookup lib, String name, FunctionDescriptor fd, boolean errno) {
        MemorySegment symbol = lib.find(name).orElseThrow(() -> new UnsatisfiedLinkError(name + " not in " + LIBRARY));
        return errno ? LINKER.downcallHandle(symbol, fd, ERRNO) : LINKER.downcallHandle(symbol, fd);
    }

    /** A per-call errno capture buffer; allocate one per thread or per call site and reuse it. */
    public static MemorySegment newErrnoCapture(Arena arena) {
        return arena.allocate(CAPTURE);
    }

    public static int errno(MemorySegment capture) {
        return (int) ERRNO_HANDLE.get(capture, 0L);
    }

    public static String strerror(int errno) {
        try {
            return ((MemorySegment) STRERROR.invokeExact(errno))
                    .reinterpret(256)
                    .getString(0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** {@code getrlimit(RLIMIT_MEMLOCK)}: the soft limit in bytes, or -1 for unlimited. */
    public static long memlockLimitBytes() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment rlimit = arena.allocate(16, 8);
            int rc = (int) GETRLIMIT.invokeExact(8 /* RLIMIT_MEMLOCK */, rlimit);
            if (rc != 0) {
                return -2;
            }
            long soft = rlimit.get(JAVA_LONG, 0);
            return soft == -1L ? -1 : soft;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    // ------------------------------------------------------------------------------------------ devices

    /** {@code ibv_get_device_list}: the NULL-terminated array (NULL on failure, errno in {@code capture}). */
    public MemorySegment getDeviceList(MemorySegment numOut, MemorySegment capture) {
        try {
            return (MemorySegment) getDeviceList.invokeExact(capture, numOut);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void freeDeviceList(MemorySegment list) {
        try {
            freeDeviceList.invokeExact(list);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public String deviceName(MemorySegment device) {
        try {
            return ((MemorySegment) getDeviceName.invokeExact(device))
                    .reinterpret(64)
                    .getString(0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public MemorySegment openDevice(MemorySegment device, MemorySegment capture) {
        try {
            return (MemorySegment) openDevice.invokeExact(capture, device);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public int closeDevice(MemorySegment context) {
        try {
            return (int) closeDevice.invokeExact(context);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** Fills {@code attr} ({@link VerbsLayout#SIZEOF_DEVICE_ATTR} bytes); returns 0 or an errno. */
    public int queryDevice(MemorySegment context, MemorySegment attr) {
        try {
            return (int) queryDevice.invokeExact(context, attr);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** Fills {@code attr} ({@link VerbsLayout#SIZEOF_PORT_ATTR} bytes, zeroed here first); returns 0 or an errno. */
    public int queryPort(MemorySegment context, int port, MemorySegment attr) {
        attr.fill((byte) 0);
        try {
            return (int) queryPort.invokeExact(context, (byte) port, attr);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** Fills one {@code struct ibv_gid_entry}; returns 0, ENODATA for an empty entry, or another errno. */
    public int queryGidEx(MemorySegment context, int port, int index, MemorySegment entry) {
        try {
            return (int) queryGidEx.invokeExact(context, port, index, entry, 0, VerbsLayout.SIZEOF_GID_ENTRY);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** Fills 16 bytes of GID; returns 0 or an errno. */
    public int queryGid(MemorySegment context, int port, int index, MemorySegment gid) {
        try {
            return (int) queryGid.invokeExact(context, (byte) port, index, gid);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    // ------------------------------------------------------------------------------------------ resources

    public MemorySegment allocPd(MemorySegment context, MemorySegment capture) {
        try {
            return (MemorySegment) allocPd.invokeExact(capture, context);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public int deallocPd(MemorySegment pd) {
        try {
            return (int) deallocPd.invokeExact(pd);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public MemorySegment regMr(
            MemorySegment pd, MemorySegment address, long length, int access, MemorySegment capture) {
        try {
            return (MemorySegment) regMr.invokeExact(capture, pd, address, length, access);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public int deregMr(MemorySegment mr) {
        try {
            return (int) deregMr.invokeExact(mr);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public MemorySegment createCq(MemorySegment context, int cqe, MemorySegment capture) {
        try {
            return (MemorySegment)
                    createCq.invokeExact(capture, context, cqe, MemorySegment.NULL, MemorySegment.NULL, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public int destroyCq(MemorySegment cq) {
        try {
            return (int) destroyCq.invokeExact(cq);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public MemorySegment createQp(MemorySegment pd, MemorySegment initAttr, MemorySegment capture) {
        try {
            return (MemorySegment) createQp.invokeExact(capture, pd, initAttr);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** {@code ibv_modify_qp}: returns 0 or an errno. */
    public int modifyQp(MemorySegment qp, MemorySegment attr, int mask) {
        try {
            return (int) modifyQp.invokeExact(qp, attr, mask);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public int destroyQp(MemorySegment qp) {
        try {
            return (int) destroyQp.invokeExact(qp);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public String wcStatusString(int status) {
        try {
            return ((MemorySegment) wcStatusStr.invokeExact(status))
                    .reinterpret(128)
                    .getString(0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    // ------------------------------------------------------------------------------------------ data path

    /** The provider function at {@code offset} inside {@code struct ibv_context} (one of the ops offsets). */
    public static MemorySegment contextOp(MemorySegment context, long offset) {
        return context.reinterpret(VerbsLayout.CONTEXT_OPS_POST_RECV + 8).get(ADDRESS, offset);
    }

    /**
     * {@code ibv_poll_cq} through {@code ops.poll_cq} ({@code pollCq} = {@link #contextOp} of the CQ's context):
     * up to {@code max} completions into {@code wcs}; returns how many, or a negative value on failure.
     */
    public static int pollCq(MemorySegment pollCq, MemorySegment cq, int max, MemorySegment wcs) {
        try {
            return (int) POLL_CQ.invokeExact(pollCq, cq, max, wcs);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** {@code ibv_post_send} through {@code ops.post_send}: returns 0 or an errno; {@code badWr} gets the failed WR. */
    public static int postSend(MemorySegment postSend, MemorySegment qp, MemorySegment wr, MemorySegment badWr) {
        try {
            return (int) POST_WR.invokeExact(postSend, qp, wr, badWr);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** {@code ibv_post_recv} through {@code ops.post_recv}: returns 0 or an errno. */
    public static int postRecv(MemorySegment postRecv, MemorySegment qp, MemorySegment wr, MemorySegment badWr) {
        try {
            return (int) POST_WR.invokeExact(postRecv, qp, wr, badWr);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    private static RuntimeException rethrow(Throwable t) {
        if (t instanceof RuntimeException r) {
            throw r;
        }
        if (t instanceof Error e) {
            throw e;
        }
        throw new IllegalStateException(t);
    }
}
