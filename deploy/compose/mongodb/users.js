// Run by the mongo image when docker-compose.yml creates the data volume
// (/docker-entrypoint-initdb.d, as the root user of MONGO_INITDB_ROOT_*), and by the
// mongodb-init job of docker-compose.cluster.yml at every start: one user per
// service, with readWrite on that service's own database and nothing else. The
// passwords come from .env (`make secrets`) through the container's environment.
const services = ["crm", "identity", "notification", "mailsync"];

for (const service of services) {
  const variable = `${service.toUpperCase()}_MONGODB_PASSWORD`;
  const password = process.env[variable];
  if (!password) throw new Error(`${variable} is not set: run make secrets`);
  const admin = db.getSiblingDB("admin");
  const roles = [{ role: "readWrite", db: service }];
  // Idempotent: the cluster's init job runs this at every `up`.
  if (admin.getUser(service) === null) {
    admin.createUser({ user: service, pwd: password, roles: roles });
  } else {
    admin.updateUser(service, { pwd: password, roles: roles });
  }
  print(`user ${service}: readWrite on ${service}`);
}
