// One login with pgjdbc (Debian's libpostgresql-jdbc-java), for pgrx-tests/tests/drivers.rs.
// Usage: java -cp /usr/share/java/postgresql.jar JdbcLogin.java HOST PORT USER PASSWORD CA_CERT
//        CLIENT_CERT CLIENT_KEY_PK8_DER
// Prints "session: USER" and exits 0, or "failed: ERROR" and exits 1; the driver's own
// timeouts bound it (connectTimeout, loginTimeout, socketTimeout).
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.Properties;

public class JdbcLogin {
    public static void main(String[] a) {
        Properties p = new Properties();
        p.setProperty("user", a[2]);
        p.setProperty("password", a[3]);
        p.setProperty("sslmode", "verify-ca");
        p.setProperty("sslrootcert", a[4]);
        p.setProperty("sslcert", a[5]);
        p.setProperty("sslkey", a[6]);
        p.setProperty("connectTimeout", "20");
        p.setProperty("loginTimeout", "30");
        p.setProperty("socketTimeout", "30");
        String url = "jdbc:postgresql://" + a[0] + ":" + a[1] + "/postgres";
        try (Connection c = DriverManager.getConnection(url, p)) {
            ResultSet r = c.createStatement().executeQuery("SELECT current_user");
            r.next();
            System.out.println("session: " + r.getString(1));
        } catch (SQLException e) {
            Throwable cause = e.getCause();
            System.out.println("failed: " + e.getSQLState() + ": " + e.getMessage()
                + (cause != null ? " / " + cause : ""));
            System.exit(1);
        }
    }
}
