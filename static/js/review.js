// The review page: the same in-memory player as the work page, fed by the supervisor's
// own playback grants (bound to the submission, refused once it is decided).
import { startPlayer } from "./player.js";

const workspace = document.getElementById("workspace");
if (workspace) startPlayer(workspace);
