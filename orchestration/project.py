"""The one dbt project object that dagster-dbt and the CLI share."""

from dagster_dbt import DbtProject

from ml.config import PROFILES_DIR, WAREHOUSE_DIR

warehouse_project = DbtProject(project_dir=WAREHOUSE_DIR, profiles_dir=PROFILES_DIR)
# Under `dagster dev` this runs `dbt parse` so the manifest always matches the SQL being edited.
warehouse_project.prepare_if_dev()
