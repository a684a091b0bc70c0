// Run by the mongodb-init job of docker-compose.cluster.yml at every start. The job
// shares mongodb-1's network (network_mode: service:mongodb-1) and connects to it over
// 127.0.0.1, so MongoDB's localhost exception lets it act before any user exists, as the
// manual's "replica set with keyfile authentication" does: initiate the three-member
// replica set unless it already is, wait for a primary, create the administrator (root,
// MONGODB_ROOT_PASSWORD) unless it exists, then, as the administrator, the services'
// users (users.js: readWrite on each service's own database only).
const config = {
  _id: "rs0",
  members: [
    { _id: 0, host: "mongodb-1:27017", priority: 2 },
    { _id: 1, host: "mongodb-2:27017", priority: 1 },
    { _id: 2, host: "mongodb-3:27017", priority: 1 },
  ],
};
const rootPassword = process.env.MONGODB_ROOT_PASSWORD;
if (!rootPassword) throw new Error("MONGODB_ROOT_PASSWORD is not set: run make secrets");
const admin = db.getSiblingDB("admin");

function signedIn() {
  try {
    return admin.auth("root", rootPassword).ok === 1;
  } catch (e) {
    return false;
  }
}

const returning = signedIn(); // a later start: the set and its users exist
if (!returning) {
  try {
    rs.initiate(config);
    print("replica set rs0 initiated");
  } catch (e) {
    if (e.codeName !== "AlreadyInitialized") throw e;
    print("replica set rs0 already initiated"); // a start that stopped before the users
  }
}

let primary = false;
for (let waited = 0; waited < 120 && !primary; waited++) {
  try {
    primary = db.hello().isWritablePrimary === true; // the localhost member, mongodb-1
  } catch (e) {
    print(`waiting: ${e.codeName || e.message}`);
  }
  if (!primary) sleep(1000);
}
if (!primary) {
  print("mongodb-1 did not become primary within 120 s");
  quit(1);
}

if (!returning) {
  // The localhost exception allows exactly this first user; the rest is done as it.
  admin.createUser({ user: "root", pwd: rootPassword, roles: [{ role: "root", db: "admin" }] });
  if (!signedIn()) throw new Error("could not sign in as the administrator just created");
  print("administrator root created");
}
load("/init/users.js");
