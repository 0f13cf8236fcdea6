/* Prints "name value" for every struct size and field offset that io.pegaflow.rdma.verbs.VerbsLayout uses, from the
 * real rdma-core headers. VerbsLayoutTest compiles and runs it and compares with the Java constants and with the
 * table embedded in the jar (verbs-layout.txt, which the start-up check reads). */
#include <stddef.h>
#include <stdio.h>
#include <infiniband/verbs.h>

#define SIZE(s) printf("sizeof.%s %zu\n", #s, sizeof(struct s))
#define OFF(s, f) printf("%s.%s %zu\n", #s, #f, offsetof(struct s, f))

int main(void) {
    OFF(ibv_context, device);
    OFF(ibv_context, ops);
    printf("ibv_context.ops.poll_cq %zu\n", offsetof(struct ibv_context, ops) + offsetof(struct ibv_context_ops, poll_cq));
    printf("ibv_context.ops.req_notify_cq %zu\n", offsetof(struct ibv_context, ops) + offsetof(struct ibv_context_ops, req_notify_cq));
    printf("ibv_context.ops.post_send %zu\n", offsetof(struct ibv_context, ops) + offsetof(struct ibv_context_ops, post_send));
    printf("ibv_context.ops.post_recv %zu\n", offsetof(struct ibv_context, ops) + offsetof(struct ibv_context_ops, post_recv));

    SIZE(ibv_device_attr);
    OFF(ibv_device_attr, fw_ver);
    OFF(ibv_device_attr, max_mr_size);
    OFF(ibv_device_attr, max_qp);
    OFF(ibv_device_attr, max_qp_wr);
    OFF(ibv_device_attr, max_sge);
    OFF(ibv_device_attr, max_cq);
    OFF(ibv_device_attr, max_cqe);
    OFF(ibv_device_attr, max_mr);
    OFF(ibv_device_attr, max_qp_rd_atom);
    OFF(ibv_device_attr, max_qp_init_rd_atom);
    OFF(ibv_device_attr, phys_port_cnt);

    SIZE(ibv_port_attr);
    OFF(ibv_port_attr, state);
    OFF(ibv_port_attr, max_mtu);
    OFF(ibv_port_attr, active_mtu);
    OFF(ibv_port_attr, gid_tbl_len);
    OFF(ibv_port_attr, lid);
    OFF(ibv_port_attr, active_width);
    OFF(ibv_port_attr, active_speed);
    OFF(ibv_port_attr, phys_state);
    OFF(ibv_port_attr, link_layer);

    SIZE(ibv_gid_entry);
    OFF(ibv_gid_entry, gid);
    OFF(ibv_gid_entry, gid_index);
    OFF(ibv_gid_entry, port_num);
    OFF(ibv_gid_entry, gid_type);
    OFF(ibv_gid_entry, ndev_ifindex);

    OFF(ibv_mr, context);
    OFF(ibv_mr, addr);
    OFF(ibv_mr, length);
    OFF(ibv_mr, lkey);
    OFF(ibv_mr, rkey);

    OFF(ibv_cq, context);
    OFF(ibv_qp, context);
    OFF(ibv_qp, qp_num);
    OFF(ibv_qp, state);

    SIZE(ibv_qp_init_attr);
    OFF(ibv_qp_init_attr, qp_context);
    OFF(ibv_qp_init_attr, send_cq);
    OFF(ibv_qp_init_attr, recv_cq);
    OFF(ibv_qp_init_attr, srq);
    OFF(ibv_qp_init_attr, cap.max_send_wr);
    OFF(ibv_qp_init_attr, cap.max_recv_wr);
    OFF(ibv_qp_init_attr, cap.max_send_sge);
    OFF(ibv_qp_init_attr, cap.max_recv_sge);
    OFF(ibv_qp_init_attr, cap.max_inline_data);
    OFF(ibv_qp_init_attr, qp_type);
    OFF(ibv_qp_init_attr, sq_sig_all);

    SIZE(ibv_qp_attr);
    OFF(ibv_qp_attr, qp_state);
    OFF(ibv_qp_attr, path_mtu);
    OFF(ibv_qp_attr, qkey);
    OFF(ibv_qp_attr, rq_psn);
    OFF(ibv_qp_attr, sq_psn);
    OFF(ibv_qp_attr, dest_qp_num);
    OFF(ibv_qp_attr, qp_access_flags);
    OFF(ibv_qp_attr, ah_attr.grh.dgid);
    OFF(ibv_qp_attr, ah_attr.grh.flow_label);
    OFF(ibv_qp_attr, ah_attr.grh.sgid_index);
    OFF(ibv_qp_attr, ah_attr.grh.hop_limit);
    OFF(ibv_qp_attr, ah_attr.grh.traffic_class);
    OFF(ibv_qp_attr, ah_attr.dlid);
    OFF(ibv_qp_attr, ah_attr.sl);
    OFF(ibv_qp_attr, ah_attr.src_path_bits);
    OFF(ibv_qp_attr, ah_attr.static_rate);
    OFF(ibv_qp_attr, ah_attr.is_global);
    OFF(ibv_qp_attr, ah_attr.port_num);
    OFF(ibv_qp_attr, pkey_index);
    OFF(ibv_qp_attr, max_rd_atomic);
    OFF(ibv_qp_attr, max_dest_rd_atomic);
    OFF(ibv_qp_attr, min_rnr_timer);
    OFF(ibv_qp_attr, port_num);
    OFF(ibv_qp_attr, timeout);
    OFF(ibv_qp_attr, retry_cnt);
    OFF(ibv_qp_attr, rnr_retry);

    SIZE(ibv_sge);
    OFF(ibv_sge, addr);
    OFF(ibv_sge, length);
    OFF(ibv_sge, lkey);

    SIZE(ibv_send_wr);
    OFF(ibv_send_wr, wr_id);
    OFF(ibv_send_wr, next);
    OFF(ibv_send_wr, sg_list);
    OFF(ibv_send_wr, num_sge);
    OFF(ibv_send_wr, opcode);
    OFF(ibv_send_wr, send_flags);
    OFF(ibv_send_wr, wr.rdma.remote_addr);
    OFF(ibv_send_wr, wr.rdma.rkey);

    SIZE(ibv_recv_wr);
    OFF(ibv_recv_wr, wr_id);
    OFF(ibv_recv_wr, next);
    OFF(ibv_recv_wr, sg_list);
    OFF(ibv_recv_wr, num_sge);

    SIZE(ibv_wc);
    OFF(ibv_wc, wr_id);
    OFF(ibv_wc, status);
    OFF(ibv_wc, opcode);
    OFF(ibv_wc, vendor_err);
    OFF(ibv_wc, byte_len);
    OFF(ibv_wc, qp_num);
    return 0;
}
