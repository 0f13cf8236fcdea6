/**
 * What runs inside the Soft-RoCE VM ({@code transport-rdma/vm/softroce-run.sh}) in one JVM: {@link
 * io.pegaflow.fabric.softroce.SoftRoceSuite} (rdma-check, then the RDMA transport's tests and {@link
 * io.pegaflow.fabric.softroce.RdmaCrossNodeLoadCheck}). The check's name keeps it out of Maven's test run on hosts
 * without a device.
 *
 * <p>Threading: JUnit's; the check waits on gRPC futures and polls a load flag from the test thread, each bounded.
 */
package io.pegaflow.fabric.softroce;
