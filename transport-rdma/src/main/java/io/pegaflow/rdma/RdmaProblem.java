package io.pegaflow.rdma;

/**
 * Something that keeps the RDMA transport from working as configured, and what fixes it.
 *
 * @param problem what is wrong, with the values seen ("port 1 of mlx5_0 is DOWN")
 * @param fix what an operator does about it ("check the cable and the switch port; ibstat mlx5_0")
 */
public record RdmaProblem(String problem, String fix) {}
