package io.pegaflow.fabric.cli;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import io.pegaflow.proto.fabric.ClusterStatusResponse;
import io.pegaflow.proto.fabric.Member;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/** Renders a {@code ClusterStatus} reply as a table for people or as JSON for scripts. */
public final class StatusFormat {
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private StatusFormat() {}

    public static String table(ClusterStatusResponse status) {
        StringBuilder out = new StringBuilder();
        out.append("cluster ")
                .append(status.getClusterName())
                .append(", seen from node ")
                .append(status.getSelfNodeId())
                .append(" (")
                .append(status.getSelfAddress())
                .append(")\n");
        out.append("leader: ")
                .append(status.getLeaderAddress().isEmpty() ? "-" : status.getLeaderAddress())
                .append('\n');
        int idWidth = Math.max(
                4,
                status.getMembersList().stream()
                        .mapToInt(m -> m.getNodeId().length())
                        .max()
                        .orElse(0));
        int addrWidth = Math.max(
                7,
                status.getMembersList().stream()
                        .mapToInt(m -> m.getAddress().length())
                        .max()
                        .orElse(0));
        String row = "  %-" + idWidth + "s  %-9s  %-" + addrWidth + "s  %s%n";
        out.append(String.format(row, "NODE", "STATUS", "ADDRESS", "ROLES"));
        for (Member m : status.getMembersList()) {
            String reach = status.getUnreachableList().contains(m.getAddress()) ? " (unreachable)" : "";
            out.append(String.format(
                    row,
                    m.getNodeId().isEmpty() ? "?" : m.getNodeId(),
                    m.getStatus(),
                    m.getAddress(),
                    String.join(",", m.getRolesList()) + reach));
        }
        Map<String, Integer> byStatus = new TreeMap<>();
        status.getMembersList().forEach(m -> byStatus.merge(m.getStatus(), 1, Integer::sum));
        out.append(status.getMembersCount()).append(" members: ");
        out.append(String.join(
                ", ",
                byStatus.entrySet().stream()
                        .map(e -> e.getValue() + " " + e.getKey())
                        .toList()));
        if (status.getUnreachableCount() > 0) {
            out.append("; ").append(status.getUnreachableCount()).append(" unreachable");
        }
        return out.append('\n').toString();
    }

    public static String json(ClusterStatusResponse status) {
        Map<String, Object> root = new LinkedHashMap<>();
        root.put("clusterName", status.getClusterName());
        root.put("selfNodeId", status.getSelfNodeId());
        root.put("selfAddress", status.getSelfAddress());
        root.put("leaderAddress", status.getLeaderAddress());
        root.put(
                "members",
                status.getMembersList().stream()
                        .map(m -> {
                            Map<String, Object> member = new LinkedHashMap<>();
                            member.put("address", m.getAddress());
                            member.put("nodeId", m.getNodeId());
                            member.put("status", m.getStatus());
                            member.put("roles", List.copyOf(m.getRolesList()));
                            return member;
                        })
                        .toList());
        root.put("unreachable", List.copyOf(status.getUnreachableList()));
        try {
            return JSON.writeValueAsString(root) + "\n";
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("cannot render status as JSON", e);
        }
    }

    /** How many members report {@code Up}. */
    public static long upCount(ClusterStatusResponse status) {
        return status.getMembersList().stream()
                .filter(m -> m.getStatus().equals("Up"))
                .count();
    }
}
