package io.pegaflow.rdma.verbs;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The struct sizes and field offsets of libibverbs (rdma-core 44 headers, x86-64) that the binding reads and writes.
 * Three copies must agree: these constants, the table embedded in the jar ({@code verbs-layout.txt}, checked at
 * start-up by {@link #verify()}), and the C headers themselves (VerbsLayoutTest compiles an {@code offsetof} program
 * against {@code libibverbs-dev} and compares). Constant names: {@code SIZEOF_<STRUCT>} and
 * {@code <STRUCT>_<FIELD>} with the {@code ibv_} prefix dropped.
 */
public final class VerbsLayout {
    private VerbsLayout() {}

    public static final long CONTEXT_DEVICE = 0;
    public static final long CONTEXT_OPS = 8;
    public static final long CONTEXT_OPS_POLL_CQ = 96;
    public static final long CONTEXT_OPS_REQ_NOTIFY_CQ = 104;
    public static final long CONTEXT_OPS_POST_SEND = 208;
    public static final long CONTEXT_OPS_POST_RECV = 216;
    public static final long SIZEOF_DEVICE_ATTR = 232;
    public static final long DEVICE_ATTR_FW_VER = 0;
    public static final long DEVICE_ATTR_MAX_MR_SIZE = 80;
    public static final long DEVICE_ATTR_MAX_QP = 108;
    public static final long DEVICE_ATTR_MAX_QP_WR = 112;
    public static final long DEVICE_ATTR_MAX_SGE = 120;
    public static final long DEVICE_ATTR_MAX_CQ = 128;
    public static final long DEVICE_ATTR_MAX_CQE = 132;
    public static final long DEVICE_ATTR_MAX_MR = 136;
    public static final long DEVICE_ATTR_MAX_QP_RD_ATOM = 144;
    public static final long DEVICE_ATTR_MAX_QP_INIT_RD_ATOM = 156;
    public static final long DEVICE_ATTR_PHYS_PORT_CNT = 227;
    public static final long SIZEOF_PORT_ATTR = 52;
    public static final long PORT_ATTR_STATE = 0;
    public static final long PORT_ATTR_MAX_MTU = 4;
    public static final long PORT_ATTR_ACTIVE_MTU = 8;
    public static final long PORT_ATTR_GID_TBL_LEN = 12;
    public static final long PORT_ATTR_LID = 34;
    public static final long PORT_ATTR_ACTIVE_WIDTH = 43;
    public static final long PORT_ATTR_ACTIVE_SPEED = 44;
    public static final long PORT_ATTR_PHYS_STATE = 45;
    public static final long PORT_ATTR_LINK_LAYER = 46;
    public static final long SIZEOF_GID_ENTRY = 32;
    public static final long GID_ENTRY_GID = 0;
    public static final long GID_ENTRY_GID_INDEX = 16;
    public static final long GID_ENTRY_PORT_NUM = 20;
    public static final long GID_ENTRY_GID_TYPE = 24;
    public static final long GID_ENTRY_NDEV_IFINDEX = 28;
    public static final long MR_CONTEXT = 0;
    public static final long MR_ADDR = 16;
    public static final long MR_LENGTH = 24;
    public static final long MR_LKEY = 36;
    public static final long MR_RKEY = 40;
    public static final long CQ_CONTEXT = 0;
    public static final long QP_CONTEXT = 0;
    public static final long QP_QP_NUM = 52;
    public static final long QP_STATE = 56;
    public static final long SIZEOF_QP_INIT_ATTR = 64;
    public static final long QP_INIT_ATTR_QP_CONTEXT = 0;
    public static final long QP_INIT_ATTR_SEND_CQ = 8;
    public static final long QP_INIT_ATTR_RECV_CQ = 16;
    public static final long QP_INIT_ATTR_SRQ = 24;
    public static final long QP_INIT_ATTR_CAP_MAX_SEND_WR = 32;
    public static final long QP_INIT_ATTR_CAP_MAX_RECV_WR = 36;
    public static final long QP_INIT_ATTR_CAP_MAX_SEND_SGE = 40;
    public static final long QP_INIT_ATTR_CAP_MAX_RECV_SGE = 44;
    public static final long QP_INIT_ATTR_CAP_MAX_INLINE_DATA = 48;
    public static final long QP_INIT_ATTR_QP_TYPE = 52;
    public static final long QP_INIT_ATTR_SQ_SIG_ALL = 56;
    public static final long SIZEOF_QP_ATTR = 144;
    public static final long QP_ATTR_QP_STATE = 0;
    public static final long QP_ATTR_PATH_MTU = 8;
    public static final long QP_ATTR_QKEY = 16;
    public static final long QP_ATTR_RQ_PSN = 20;
    public static final long QP_ATTR_SQ_PSN = 24;
    public static final long QP_ATTR_DEST_QP_NUM = 28;
    public static final long QP_ATTR_QP_ACCESS_FLAGS = 32;
    public static final long QP_ATTR_AH_ATTR_GRH_DGID = 56;
    public static final long QP_ATTR_AH_ATTR_GRH_FLOW_LABEL = 72;
    public static final long QP_ATTR_AH_ATTR_GRH_SGID_INDEX = 76;
    public static final long QP_ATTR_AH_ATTR_GRH_HOP_LIMIT = 77;
    public static final long QP_ATTR_AH_ATTR_GRH_TRAFFIC_CLASS = 78;
    public static final long QP_ATTR_AH_ATTR_DLID = 80;
    public static final long QP_ATTR_AH_ATTR_SL = 82;
    public static final long QP_ATTR_AH_ATTR_SRC_PATH_BITS = 83;
    public static final long QP_ATTR_AH_ATTR_STATIC_RATE = 84;
    public static final long QP_ATTR_AH_ATTR_IS_GLOBAL = 85;
    public static final long QP_ATTR_AH_ATTR_PORT_NUM = 86;
    public static final long QP_ATTR_PKEY_INDEX = 120;
    public static final long QP_ATTR_MAX_RD_ATOMIC = 126;
    public static final long QP_ATTR_MAX_DEST_RD_ATOMIC = 127;
    public static final long QP_ATTR_MIN_RNR_TIMER = 128;
    public static final long QP_ATTR_PORT_NUM = 129;
    public static final long QP_ATTR_TIMEOUT = 130;
    public static final long QP_ATTR_RETRY_CNT = 131;
    public static final long QP_ATTR_RNR_RETRY = 132;
    public static final long SIZEOF_SGE = 16;
    public static final long SGE_ADDR = 0;
    public static final long SGE_LENGTH = 8;
    public static final long SGE_LKEY = 12;
    public static final long SIZEOF_SEND_WR = 128;
    public static final long SEND_WR_WR_ID = 0;
    public static final long SEND_WR_NEXT = 8;
    public static final long SEND_WR_SG_LIST = 16;
    public static final long SEND_WR_NUM_SGE = 24;
    public static final long SEND_WR_OPCODE = 28;
    public static final long SEND_WR_SEND_FLAGS = 32;
    public static final long SEND_WR_WR_RDMA_REMOTE_ADDR = 40;
    public static final long SEND_WR_WR_RDMA_RKEY = 48;
    public static final long SIZEOF_RECV_WR = 32;
    public static final long RECV_WR_WR_ID = 0;
    public static final long RECV_WR_NEXT = 8;
    public static final long RECV_WR_SG_LIST = 16;
    public static final long RECV_WR_NUM_SGE = 24;
    public static final long SIZEOF_WC = 48;
    public static final long WC_WR_ID = 0;
    public static final long WC_STATUS = 8;
    public static final long WC_OPCODE = 12;
    public static final long WC_VENDOR_ERR = 16;
    public static final long WC_BYTE_LEN = 20;
    public static final long WC_QP_NUM = 28;

    /** Every constant by its C name ({@code sizeof.ibv_wc}, {@code ibv_send_wr.wr.rdma.rkey}), in header order. */
    public static Map<String, Long> table() {
        Map<String, Long> t = new LinkedHashMap<>();
        t.put("ibv_context.device", CONTEXT_DEVICE);
        t.put("ibv_context.ops", CONTEXT_OPS);
        t.put("ibv_context.ops.poll_cq", CONTEXT_OPS_POLL_CQ);
        t.put("ibv_context.ops.req_notify_cq", CONTEXT_OPS_REQ_NOTIFY_CQ);
        t.put("ibv_context.ops.post_send", CONTEXT_OPS_POST_SEND);
        t.put("ibv_context.ops.post_recv", CONTEXT_OPS_POST_RECV);
        t.put("sizeof.ibv_device_attr", SIZEOF_DEVICE_ATTR);
        t.put("ibv_device_attr.fw_ver", DEVICE_ATTR_FW_VER);
        t.put("ibv_device_attr.max_mr_size", DEVICE_ATTR_MAX_MR_SIZE);
        t.put("ibv_device_attr.max_qp", DEVICE_ATTR_MAX_QP);
        t.put("ibv_device_attr.max_qp_wr", DEVICE_ATTR_MAX_QP_WR);
        t.put("ibv_device_attr.max_sge", DEVICE_ATTR_MAX_SGE);
        t.put("ibv_device_attr.max_cq", DEVICE_ATTR_MAX_CQ);
        t.put("ibv_device_attr.max_cqe", DEVICE_ATTR_MAX_CQE);
        t.put("ibv_device_attr.max_mr", DEVICE_ATTR_MAX_MR);
        t.put("ibv_device_attr.max_qp_rd_atom", DEVICE_ATTR_MAX_QP_RD_ATOM);
        t.put("ibv_device_attr.max_qp_init_rd_atom", DEVICE_ATTR_MAX_QP_INIT_RD_ATOM);
        t.put("ibv_device_attr.phys_port_cnt", DEVICE_ATTR_PHYS_PORT_CNT);
        t.put("sizeof.ibv_port_attr", SIZEOF_PORT_ATTR);
        t.put("ibv_port_attr.state", PORT_ATTR_STATE);
        t.put("ibv_port_attr.max_mtu", PORT_ATTR_MAX_MTU);
        t.put("ibv_port_attr.active_mtu", PORT_ATTR_ACTIVE_MTU);
        t.put("ibv_port_attr.gid_tbl_len", PORT_ATTR_GID_TBL_LEN);
        t.put("ibv_port_attr.lid", PORT_ATTR_LID);
        t.put("ibv_port_attr.active_width", PORT_ATTR_ACTIVE_WIDTH);
        t.put("ibv_port_attr.active_speed", PORT_ATTR_ACTIVE_SPEED);
        t.put("ibv_port_attr.phys_state", PORT_ATTR_PHYS_STATE);
        t.put("ibv_port_attr.link_layer", PORT_ATTR_LINK_LAYER);
        t.put("sizeof.ibv_gid_entry", SIZEOF_GID_ENTRY);
        t.put("ibv_gid_entry.gid", GID_ENTRY_GID);
        t.put("ibv_gid_entry.gid_index", GID_ENTRY_GID_INDEX);
        t.put("ibv_gid_entry.port_num", GID_ENTRY_PORT_NUM);
        t.put("ibv_gid_entry.gid_type", GID_ENTRY_GID_TYPE);
        t.put("ibv_gid_entry.ndev_ifindex", GID_ENTRY_NDEV_IFINDEX);
        t.put("ibv_mr.context", MR_CONTEXT);
        t.put("ibv_mr.addr", MR_ADDR);
        t.put("ibv_mr.length", MR_LENGTH);
        t.put("ibv_mr.lkey", MR_LKEY);
        t.put("ibv_mr.rkey", MR_RKEY);
        t.put("ibv_cq.context", CQ_CONTEXT);
        t.put("ibv_qp.context", QP_CONTEXT);
        t.put("ibv_qp.qp_num", QP_QP_NUM);
        t.put("ibv_qp.state", QP_STATE);
        t.put("sizeof.ibv_qp_init_attr", SIZEOF_QP_INIT_ATTR);
        t.put("ibv_qp_init_attr.qp_context", QP_INIT_ATTR_QP_CONTEXT);
        t.put("ibv_qp_init_attr.send_cq", QP_INIT_ATTR_SEND_CQ);
        t.put("ibv_qp_init_attr.recv_cq", QP_INIT_ATTR_RECV_CQ);
        t.put("ibv_qp_init_attr.srq", QP_INIT_ATTR_SRQ);
        t.put("ibv_qp_init_attr.cap.max_send_wr", QP_INIT_ATTR_CAP_MAX_SEND_WR);
        t.put("ibv_qp_init_attr.cap.max_recv_wr", QP_INIT_ATTR_CAP_MAX_RECV_WR);
        t.put("ibv_qp_init_attr.cap.max_send_sge", QP_INIT_ATTR_CAP_MAX_SEND_SGE);
        t.put("ibv_qp_init_attr.cap.max_recv_sge", QP_INIT_ATTR_CAP_MAX_RECV_SGE);
        t.put("ibv_qp_init_attr.cap.max_inline_data", QP_INIT_ATTR_CAP_MAX_INLINE_DATA);
        t.put("ibv_qp_init_attr.qp_type", QP_INIT_ATTR_QP_TYPE);
        t.put("ibv_qp_init_attr.sq_sig_all", QP_INIT_ATTR_SQ_SIG_ALL);
        t.put("sizeof.ibv_qp_attr", SIZEOF_QP_ATTR);
        t.put("ibv_qp_attr.qp_state", QP_ATTR_QP_STATE);
        t.put("ibv_qp_attr.path_mtu", QP_ATTR_PATH_MTU);
        t.put("ibv_qp_attr.qkey", QP_ATTR_QKEY);
        t.put("ibv_qp_attr.rq_psn", QP_ATTR_RQ_PSN);
        t.put("ibv_qp_attr.sq_psn", QP_ATTR_SQ_PSN);
        t.put("ibv_qp_attr.dest_qp_num", QP_ATTR_DEST_QP_NUM);
        t.put("ibv_qp_attr.qp_access_flags", QP_ATTR_QP_ACCESS_FLAGS);
        t.put("ibv_qp_attr.ah_attr.grh.dgid", QP_ATTR_AH_ATTR_GRH_DGID);
        t.put("ibv_qp_attr.ah_attr.grh.flow_label", QP_ATTR_AH_ATTR_GRH_FLOW_LABEL);
        t.put("ibv_qp_attr.ah_attr.grh.sgid_index", QP_ATTR_AH_ATTR_GRH_SGID_INDEX);
        t.put("ibv_qp_attr.ah_attr.grh.hop_limit", QP_ATTR_AH_ATTR_GRH_HOP_LIMIT);
        t.put("ibv_qp_attr.ah_attr.grh.traffic_class", QP_ATTR_AH_ATTR_GRH_TRAFFIC_CLASS);
        t.put("ibv_qp_attr.ah_attr.dlid", QP_ATTR_AH_ATTR_DLID);
        t.put("ibv_qp_attr.ah_attr.sl", QP_ATTR_AH_ATTR_SL);
        t.put("ibv_qp_attr.ah_attr.src_path_bits", QP_ATTR_AH_ATTR_SRC_PATH_BITS);
        t.put("ibv_qp_attr.ah_attr.static_rate", QP_ATTR_AH_ATTR_STATIC_RATE);
        t.put("ibv_qp_attr.ah_attr.is_global", QP_ATTR_AH_ATTR_IS_GLOBAL);
        t.put("ibv_qp_attr.ah_attr.port_num", QP_ATTR_AH_ATTR_PORT_NUM);
        t.put("ibv_qp_attr.pkey_index", QP_ATTR_PKEY_INDEX);
        t.put("ibv_qp_attr.max_rd_atomic", QP_ATTR_MAX_RD_ATOMIC);
        t.put("ibv_qp_attr.max_dest_rd_atomic", QP_ATTR_MAX_DEST_RD_ATOMIC);
        t.put("ibv_qp_attr.min_rnr_timer", QP_ATTR_MIN_RNR_TIMER);
        t.put("ibv_qp_attr.port_num", QP_ATTR_PORT_NUM);
        t.put("ibv_qp_attr.timeout", QP_ATTR_TIMEOUT);
        t.put("ibv_qp_attr.retry_cnt", QP_ATTR_RETRY_CNT);
        t.put("ibv_qp_attr.rnr_retry", QP_ATTR_RNR_RETRY);
        t.put("sizeof.ibv_sge", SIZEOF_SGE);
        t.put("ibv_sge.addr", SGE_ADDR);
        t.put("ibv_sge.length", SGE_LENGTH);
        t.put("ibv_sge.lkey", SGE_LKEY);
        t.put("sizeof.ibv_send_wr", SIZEOF_SEND_WR);
        t.put("ibv_send_wr.wr_id", SEND_WR_WR_ID);
        t.put("ibv_send_wr.next", SEND_WR_NEXT);
        t.put("ibv_send_wr.sg_list", SEND_WR_SG_LIST);
        t.put("ibv_send_wr.num_sge", SEND_WR_NUM_SGE);
        t.put("ibv_send_wr.opcode", SEND_WR_OPCODE);
        t.put("ibv_send_wr.send_flags", SEND_WR_SEND_FLAGS);
        t.put("ibv_send_wr.wr.rdma.remote_addr", SEND_WR_WR_RDMA_REMOTE_ADDR);
        t.put("ibv_send_wr.wr.rdma.rkey", SEND_WR_WR_RDMA_RKEY);
        t.put("sizeof.ibv_recv_wr", SIZEOF_RECV_WR);
        t.put("ibv_recv_wr.wr_id", RECV_WR_WR_ID);
        t.put("ibv_recv_wr.next", RECV_WR_NEXT);
        t.put("ibv_recv_wr.sg_list", RECV_WR_SG_LIST);
        t.put("ibv_recv_wr.num_sge", RECV_WR_NUM_SGE);
        t.put("sizeof.ibv_wc", SIZEOF_WC);
        t.put("ibv_wc.wr_id", WC_WR_ID);
        t.put("ibv_wc.status", WC_STATUS);
        t.put("ibv_wc.opcode", WC_OPCODE);
        t.put("ibv_wc.vendor_err", WC_VENDOR_ERR);
        t.put("ibv_wc.byte_len", WC_BYTE_LEN);
        t.put("ibv_wc.qp_num", WC_QP_NUM);
        return t;
    }

    /** The table embedded in the jar (written from the C headers; comment lines start with {@code #}). */
    public static Map<String, Long> embedded() {
        Map<String, Long> t = new LinkedHashMap<>();
        try (InputStream in = VerbsLayout.class.getResourceAsStream("verbs-layout.txt")) {
            if (in == null) {
                throw new IllegalStateException("verbs-layout.txt is missing from the jar");
            }
            BufferedReader reader = new BufferedReader(new InputStreamReader(in, StandardCharsets.US_ASCII));
            for (String line; (line = reader.readLine()) != null; ) {
                line = line.strip();
                if (line.isEmpty() || line.startsWith("#")) {
                    continue;
                }
                String[] parts = line.split("\\s+");
                t.put(parts[0], Long.parseLong(parts[1]));
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return t;
    }

    /**
     * The differences between two tables, one line per name ("name: expected E, got G" or missing), empty when equal.
     */
    public static String diff(Map<String, Long> expected, Map<String, Long> actual) {
        StringBuilder out = new StringBuilder();
        for (Map.Entry<String, Long> e : expected.entrySet()) {
            Long got = actual.get(e.getKey());
            if (!e.getValue().equals(got)) {
                out.append(e.getKey())
                        .append(": expected ")
                        .append(e.getValue())
                        .append(", got ")
                        .append(got)
                        .append('\n');
            }
        }
        for (String name : actual.keySet()) {
            if (!expected.containsKey(name)) {
                out.append(name).append(": not expected\n");
            }
        }
        return out.toString();
    }

    /**
     * The start-up check: the constants the binding was compiled with must equal the embedded table, and the machine
     * must be x86-64 Linux (the only ABI the table describes).
     *
     * @throws VerbsLayoutException naming every mismatch; the transport refuses to start
     */
    public static void verify() {
        String arch = System.getProperty("os.arch");
        if (!"amd64".equals(arch) && !"x86_64".equals(arch)) {
            throw new VerbsLayoutException("the verbs binding describes x86-64 struct layouts only, this JVM runs on "
                    + arch + ": refusing to start (regenerate verbs-layout.txt with verbs_layout.c on this platform)");
        }
        String diff = diff(embedded(), table());
        if (!diff.isEmpty()) {
            throw new VerbsLayoutException(
                    "libibverbs struct layouts differ from the embedded table, refusing to start:\n" + diff);
        }
    }
}
