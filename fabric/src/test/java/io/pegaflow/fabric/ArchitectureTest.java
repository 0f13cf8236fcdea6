package io.pegaflow.fabric;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.tngtech.archunit.base.DescribedPredicate;
import com.tngtech.archunit.core.domain.JavaClass;
import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The module arrows of DESIGN.md §2 at class level, checked on the production classes of every module (the Maven
 * enforcer rules check the same arrows between artifacts; these also catch a package reaching for what its artifact
 * happens to have on its classpath). Lives in {@code fabric/} because fabric depends on every other production module,
 * so its test classpath holds all the classes the rules speak of; {@code bench/} only adds benchmarks.
 */
class ArchitectureTest {
    private static final String PROTO = "io.pegaflow.proto..";
    private static final String[] LOWER_MODULES = {
        "io.pegaflow.store..",
        "io.pegaflow.transport..",
        "io.pegaflow.gpu..",
        "io.pegaflow.config..",
        "io.pegaflow.rdma.."
    };

    private static JavaClasses classes;

    @BeforeAll
    static void importProductionClasses() {
        classes = new ClassFileImporter()
                .withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_TESTS)
                .importPackages("io.pegaflow");
    }

    /** Guards the rules below against passing because a module's classes were not on the classpath at all. */
    @Test
    void shouldSeeTheClassesOfEveryProductionModule() {
        for (String pkg : List.of(
                "io.pegaflow.proto",
                "io.pegaflow.config",
                "io.pegaflow.store",
                "io.pegaflow.transport",
                "io.pegaflow.gpu",
                "io.pegaflow.rdma",
                "io.pegaflow.actors",
                "io.pegaflow.fabric")) {
            assertTrue(
                    classes.stream().anyMatch(c -> c.getPackageName().startsWith(pkg)),
                    () -> "no production class of " + pkg + " was imported");
        }
    }

    /**
     * The engine and the store take domain types; proto ↔ domain mapping is the gRPC layer's job.
     */
    @Test
    void engineAndStoreNeverUseGeneratedProtoClasses() {
        noClasses()
                .that()
                .resideInAnyPackage("io.pegaflow.fabric.engine..", "io.pegaflow.store..")
                .should()
                .dependOnClassesThat()
                .resideInAPackage(PROTO)
                .check(classes);
    }

    /**
     * Generated proto classes are used by the gRPC services and the CLI's clients only. (The node wiring is the subject of
     * {@link #nodeWiringNamesOnlyGeneratedServiceBindings}.)
     */
    @Test
    void generatedProtoClassesAreUsedOnlyByGrpcAndCli() {
        noClasses()
                .that()
                .resideOutsideOfPackages(
                        PROTO, "io.pegaflow.fabric.grpc..", "io.pegaflow.fabric.cli..", "io.pegaflow.fabric.node..")
                .should()
                .dependOnClassesThat()
                .resideInAPackage(PROTO)
                .check(classes);
    }

    /** {@code XxxHandlerFactory}, or the service interface {@code Xxx} it binds. */
    private static boolean isServiceBinding(JavaClass target) {
        String name = target.getName();
        return name.endsWith("HandlerFactory") || (target.isInterface() && classes.contain(name + "HandlerFactory"));
    }

    /**
     * The node wiring binds the gRPC services, so it may name a service's generated interface and handler factory;
     * no generated message type.
     */
    @Test
    void nodeWiringNamesOnlyGeneratedServiceBindings() {
        noClasses()
                .that()
                .resideInAPackage("io.pegaflow.fabric.node..")
                .should()
                .dependOnClassesThat(DescribedPredicate.describe(
                        "are generated proto classes other than a service's interface and handler factory",
                        target -> target.getPackageName().startsWith("io.pegaflow.proto") && !isServiceBinding(target)))
                .check(classes);
    }

    /** store, transport, gpu, cluster-config and transport-rdma stay JDK (or Jackson) only: no actors, metrics, Scala or gRPC. */
    @Test
    void lowerModulesNeverSeePekkoKamonScalaOrGrpc() {
        noClasses()
                .that()
                .resideInAnyPackage(LOWER_MODULES)
                .should()
                .dependOnClassesThat()
                .resideInAnyPackage("org.apache.pekko..", "kamon..", "scala..", "io.grpc..")
                .check(classes);
    }

    @Test
    void actorsNeverSeeFabric() {
        noClasses()
                .that()
                .resideInAPackage("io.pegaflow.actors..")
                .should()
                .dependOnClassesThat()
                .resideInAPackage("io.pegaflow.fabric..")
                .check(classes);
    }

    @Test
    void storeNeverSeesGpu() {
        noClasses()
                .that()
                .resideInAPackage("io.pegaflow.store..")
                .should()
                .dependOnClassesThat()
                .resideInAPackage("io.pegaflow.gpu..")
                .check(classes);
    }

    @Test
    void gpuNeverSeesStore() {
        noClasses()
                .that()
                .resideInAPackage("io.pegaflow.gpu..")
                .should()
                .dependOnClassesThat()
                .resideInAPackage("io.pegaflow.store..")
                .check(classes);
    }
}
